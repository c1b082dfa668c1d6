//! The `koppel` command.
