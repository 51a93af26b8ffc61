//! The network controller's replica of public-address mappings, and applying them.
