//! Simulator of shopware (placeholder).
