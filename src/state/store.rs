//! Where orch keeps its own deployment state (lock, deployment records): the Pulumi state bucket
//! (`s3://…`) or, for a `file://` backend, a folder beside Pulumi's state.
use aws_sdk_s3::primitives::ByteStream;
use std::path::PathBuf;

use super::{dirstore, StateError};
use crate::config::Backend;

/// An object and its version tag, for compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub body: Vec<u8>,
    pub tag: String,
}

/// A tiny key/value store with compare-and-swap writes and deletes.
#[derive(Debug, Clone)]
pub enum Store {
    S3 { client: aws_sdk_s3::Client, bucket: String },
    Dir(PathBuf),
}

impl Store {
    /// The store for a Pulumi backend URL: the bucket of `s3://bucket[/…]` itself, or `<path>/.orch`
    /// beside a `file://path` backend.
    pub fn for_backend(backend: &Backend, s3: &aws_sdk_s3::Client) -> Store {
        match backend {
            Backend::S3 { bucket, .. } => Store::S3 { client: s3.clone(), bucket: bucket.clone() },
            Backend::File(path) => Store::Dir(path.join(".orch")),
        }
    }

    /// Write `body` under `key` only if nothing is there yet (S3 `If-None-Match: *`; a directory:
    /// the complete file hard-linked into place, which fails when the name exists). Returns the new
    /// object's version tag, or `None` when something is there.
    pub async fn put_if_absent(
        &self,
        key: &str,
        body: &[u8],
    ) -> Result<Option<String>, StateError> {
        match self {
            Store::S3 { client, bucket } => {
                let res = client
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .if_none_match("*")
                    .body(ByteStream::from(body.to_vec()))
                    .send()
                    .await;
                match res {
                    Ok(out) => Ok(Some(etag(out.e_tag(), body))),
                    Err(e) if precondition(e.raw_response().map(|r| r.status().as_u16())) => {
                        Ok(None)
                    }
                    Err(e) => Err(StateError::aws(format!("writing s3://{bucket}/{key}"))(e)),
                }
            }
            Store::Dir(dir) => dirstore::create(&dir.join(key), body),
        }
    }

    /// Replace the object under `key` with `body` only if it is still the version `tag` (S3
    /// `PutObject` with `If-Match`; a directory: compare and rename under an exclusive lock of the
    /// file). Returns the new version tag, or `None` when the object changed or is gone.
    pub async fn put_if_match(
        &self,
        key: &str,
        body: &[u8],
        tag: &str,
    ) -> Result<Option<String>, StateError> {
        match self {
            Store::S3 { client, bucket } => {
                let res = client
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .if_match(tag)
                    .body(ByteStream::from(body.to_vec()))
                    .send()
                    .await;
                match res {
                    Ok(out) => Ok(Some(etag(out.e_tag(), body))),
                    Err(e) if gone_or_changed(e.raw_response().map(|r| r.status().as_u16())) => {
                        Ok(None)
                    }
                    Err(e) => Err(StateError::aws(format!("writing s3://{bucket}/{key}"))(e)),
                }
            }
            Store::Dir(dir) => dirstore::replace(&dir.join(key), Some(body), tag),
        }
    }

    /// Delete the object under `key` only if it is still the version `tag` (S3 `DeleteObject` with
    /// `If-Match`; a directory: compare and remove under an exclusive lock of the file). False when
    /// the object changed or is gone.
    pub async fn delete_if_match(&self, key: &str, tag: &str) -> Result<bool, StateError> {
        match self {
            Store::S3 { client, bucket } => {
                let res = client.delete_object().bucket(bucket).key(key).if_match(tag).send().await;
                match res {
                    Ok(_) => Ok(true),
                    Err(e) if gone_or_changed(e.raw_response().map(|r| r.status().as_u16())) => {
                        Ok(false)
                    }
                    Err(e) => Err(StateError::aws(format!("deleting s3://{bucket}/{key}"))(e)),
                }
            }
            Store::Dir(dir) => Ok(dirstore::replace(&dir.join(key), None, tag)?.is_some()),
        }
    }

    /// The object under `key` with its version tag (S3: the ETag; a directory: the sha256 of the
    /// content), or `None` when there is none.
    pub async fn get_versioned(&self, key: &str) -> Result<Option<Versioned>, StateError> {
        match self {
            Store::S3 { client, bucket } => {
                match client.get_object().bucket(bucket).key(key).send().await {
                    Ok(out) => {
                        let tag = out.e_tag().map(str::to_string);
                        let bytes = out.body.collect().await.map_err(|e| {
                            StateError::step(format!("reading s3://{bucket}/{key}"), e.to_string())
                        })?;
                        let body = bytes.into_bytes().to_vec();
                        Ok(Some(Versioned { tag: etag(tag.as_deref(), &body), body }))
                    }
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
                    Err(e)
                        if matches!(e.raw_response().map(|r| r.status().as_u16()), Some(404)) =>
                    {
                        Ok(None)
                    }
                    Err(e) => Err(StateError::aws(format!("reading s3://{bucket}/{key}"))(e)),
                }
            }
            Store::Dir(dir) => dirstore::read(&dir.join(key)),
        }
    }

    pub async fn put(&self, key: &str, body: &[u8]) -> Result<(), StateError> {
        match self {
            Store::S3 { client, bucket } => {
                client
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .content_type("application/json")
                    .body(ByteStream::from(body.to_vec()))
                    .send()
                    .await
                    .map_err(StateError::aws(format!("writing s3://{bucket}/{key}")))?;
                Ok(())
            }
            Store::Dir(dir) => {
                let path = dir.join(key);
                crate::atomic::write(&path, body)
                    .map_err(StateError::io(format!("writing {}", path.display())))
            }
        }
    }

    /// The object under `key`, or `None` when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.get_versioned(key).await?.map(|v| v.body))
    }

    pub async fn delete(&self, key: &str) -> Result<(), StateError> {
        match self {
            Store::S3 { client, bucket } => {
                client
                    .delete_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(StateError::aws(format!("deleting s3://{bucket}/{key}")))?;
                Ok(())
            }
            Store::Dir(dir) => crate::atomic::remove(&dir.join(key))
                .map_err(StateError::io(format!("deleting {}", dir.join(key).display()))),
        }
    }

    /// The keys under `prefix` (a folder-like prefix ending in `/`), sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        let mut keys = vec![];
        match self {
            Store::S3 { client, bucket } => {
                let mut pages =
                    client.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
                while let Some(page) = pages.next().await {
                    let page =
                        page.map_err(StateError::aws(format!("listing s3://{bucket}/{prefix}")))?;
                    keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
                }
            }
            Store::Dir(dir) => {
                let folder = dir.join(prefix);
                if let Ok(entries) = std::fs::read_dir(&folder) {
                    for entry in entries.flatten() {
                        // Dot-names are the directory store's temporary and lock files.
                        if let Some(name) =
                            entry.file_name().to_str().filter(|n| !n.starts_with('.'))
                        {
                            keys.push(format!("{prefix}{name}"));
                        }
                    }
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Where a key lives, for messages.
    pub fn describe(&self, key: &str) -> String {
        match self {
            Store::S3 { bucket, .. } => format!("s3://{bucket}/{key}"),
            Store::Dir(dir) => dir.join(key).display().to_string(),
        }
    }
}

/// S3 answers a failed `If-None-Match` with 412 Precondition Failed, or 409
/// ConditionalRequestConflict when another conditional write raced it (PutObject, API reference).
fn precondition(status: Option<u16>) -> bool {
    matches!(status, Some(412) | Some(409))
}

/// A failed `If-Match`: 412 (another version), 409 (a racing write) or 404 NoSuchKey (gone).
fn gone_or_changed(status: Option<u16>) -> bool {
    precondition(status) || status == Some(404)
}

/// The ETag S3 returned; one missing (never from S3 itself) falls back to the body's hash, which
/// then matches nothing and fails safe.
fn etag(tag: Option<&str>, body: &[u8]) -> String {
    tag.map(str::to_string).unwrap_or_else(|| dirstore::tag(body))
}
