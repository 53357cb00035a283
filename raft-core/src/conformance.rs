//! A conformance kit for [`crate::Storage`] implementations (being built).
