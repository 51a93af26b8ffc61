//! `stratus bench spawn` and `stratus bench inject`.

pub mod inject;
pub mod spawn;

pub use spawn::run;
