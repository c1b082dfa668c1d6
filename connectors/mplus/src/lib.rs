//! The mplus connector (being written).
