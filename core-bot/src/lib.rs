//! The shop assistant (in progress).
