//! Where orch keeps its own deployment state (lock, deployment records): the Pulumi state bucket
//! (`s3://…`) or, for a `file://` backend, a folder beside Pulumi's state.
use aws_sdk_s3::primitives::ByteStream;
use std::path::PathBuf;

use super::StateError;
use crate::config::Backend;

/// A tiny key/value store with one conditional write.
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

    /// Write `body` under `key` only if nothing is there yet; `Ok(false)` when something is.
    pub async fn put_if_absent(&self, key: &str, body: &[u8]) -> Result<bool, StateError> {
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
                    Ok(_) => Ok(true),
                    Err(e)
                        if matches!(
                            e.raw_response().map(|r| r.status().as_u16()),
                            Some(412) | Some(409)
                        ) =>
                    {
                        Ok(false)
                    }
                    Err(e) => Err(StateError::aws(format!("writing s3://{bucket}/{key}"))(e)),
                }
            }
            Store::Dir(dir) => {
                let path = dir.join(key);
                create_parent(&path)?;
                match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                    Ok(mut f) => {
                        std::io::Write::write_all(&mut f, body)
                            .map_err(StateError::io(format!("writing {}", path.display())))?;
                        Ok(true)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(StateError::io(format!("creating {}", path.display()))(e)),
                }
            }
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
                create_parent(&path)?;
                std::fs::write(&path, body)
                    .map_err(StateError::io(format!("writing {}", path.display())))
            }
        }
    }

    /// The object under `key`, or `None` when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        match self {
            Store::S3 { client, bucket } => {
                match client.get_object().bucket(bucket).key(key).send().await {
                    Ok(out) => {
                        let bytes = out.body.collect().await.map_err(|e| {
                            StateError::step(format!("reading s3://{bucket}/{key}"), e.to_string())
                        })?;
                        Ok(Some(bytes.into_bytes().to_vec()))
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
            Store::Dir(dir) => match std::fs::read(dir.join(key)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(StateError::io(format!("reading {}", dir.join(key).display()))(e)),
            },
        }
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
            Store::Dir(dir) => match std::fs::remove_file(dir.join(key)) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(StateError::io(format!("deleting {}", dir.join(key).display()))(e)),
            },
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
                        if let Some(name) = entry.file_name().to_str() {
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

fn create_parent(path: &std::path::Path) -> Result<(), StateError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(StateError::io(format!("creating {}", parent.display())))?;
    }
    Ok(())
}
