//! `pedigree-registry`: the trusted model registry. An upload lands in quarantine; a durable
//! ingest job scans it, fingerprints it, verifies its signature, resolves its lineage and applies
//! the policy; consumers only ever see approved, unflagged versions. When a version is flagged,
//! the cascade marks every descendant at risk, lists the deployments that run one, and names the
//! last known-good version of each affected model.
//!
//! Storage sits behind two traits: [`store::MetaStore`] (metadata, jobs, audit log) and
//! [`blob::BlobStore`] (content-addressed file bytes), so other engines plug in without touching
//! the rest.

pub mod advisories;
pub mod advisory_feed;
pub mod analysis;
pub mod audit;
pub mod auth;
pub mod blob;
pub mod blob_s3;
pub mod cascade;
pub mod client;
pub mod config;
pub mod ingest;
pub mod names;
pub mod ops;
pub mod policy;
pub mod server;
pub mod store;
pub mod ui;
pub mod upload_hash;
pub mod webhook;
