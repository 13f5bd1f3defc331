//! node

pub mod images;
