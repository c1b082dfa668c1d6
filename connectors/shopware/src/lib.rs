//! The shopware connector (being written).
