//! messenger adapter (in progress).
