//! Simulator of mplus (placeholder).
