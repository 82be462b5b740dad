//! The Watch service over gRPC.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::error::Error;
use crate::proto::etcdserverpb::watch_server::Watch;
use crate::proto::etcdserverpb::{WatchRequest, WatchResponse};
use crate::v3::Core;

use super::context::split;

pub struct WatchService {
    pub core: Arc<Core>,
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<WatchStream>, Status> {
        let (ctx, input) = split(request);
        let responses = self
            .core
            .watch(&ctx, input.map(|r| r.map_err(Error::from)))
            .map(|r| r.map_err(Status::from));
        Ok(Response::new(Box::pin(responses)))
    }
}
