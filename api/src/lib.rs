//! Kubernetes API types support for rkube: the resource registry, validation, defaulting,
//! patches, selectors and server-side tables. No I/O lives here.

pub mod defaults;
pub mod fields;
pub mod openapi;
pub mod patch;
pub mod quantity;
pub mod resources;
pub mod selector;
pub mod table;
pub mod validation;
