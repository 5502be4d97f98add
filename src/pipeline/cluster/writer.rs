//! The writer node.
