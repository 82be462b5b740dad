//! JSON objects read one after another from a request body as the client sends it: the
//! gateway's streams take their requests this way, so a request sent later on the same body
//! (a second watch, a cancel) is served when it arrives.

use axum::body::Body;
use futures::StreamExt;
use serde::de::DeserializeOwned;

use super::gateway::{bad_json, refusal, too_large};
use crate::error::Result;

/// JSON objects read one after another from a request body as it arrives.
pub(super) struct RequestStream<T> {
    body: axum::body::BodyDataStream,
    buffer: Vec<u8>,
    limit: usize,
    ended: bool,
    _item: std::marker::PhantomData<T>,
}

impl<T: DeserializeOwned> RequestStream<T> {
    pub(super) fn new(body: Body, limit: usize) -> Self {
        RequestStream {
            body: body.into_data_stream(),
            buffer: Vec::new(),
            limit,
            ended: false,
            _item: std::marker::PhantomData,
        }
    }

    /// The next complete objects, waiting for more of the body until there is one; none
    /// once the body has ended.
    pub(super) async fn next_batch(&mut self) -> Result<Vec<T>> {
        loop {
            let mut objects = serde_json::Deserializer::from_slice(&self.buffer).into_iter::<T>();
            let mut batch = Vec::new();
            let mut used = 0;
            loop {
                match objects.next() {
                    Some(Ok(item)) => {
                        batch.push(item);
                        used = objects.byte_offset();
                    }
                    Some(Err(e)) if e.is_eof() && !self.ended => break,
                    Some(Err(e)) => return Err(bad_json(e)),
                    None => {
                        used = self.buffer.len();
                        break;
                    }
                }
            }
            self.buffer.drain(..used);
            if !batch.is_empty() || self.ended {
                return Ok(batch);
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(e)) => return Err(refusal(tonic::Code::InvalidArgument, e.to_string())),
                None => self.ended = true,
            }
            if self.buffer.len() > self.limit {
                return Err(too_large(self.buffer.len(), self.limit));
            }
        }
    }
}
