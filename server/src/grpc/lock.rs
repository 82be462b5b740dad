//! The Lock service over gRPC.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::proto::v3lockpb::lock_server::Lock;
use crate::proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use crate::v3::Core;

use super::unary;

pub struct LockService {
    pub core: Arc<Core>,
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, r: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        unary!(self.core.lock(r), Error::recipe_status)
    }

    async fn unlock(&self, r: Request<UnlockRequest>) -> Result<Response<UnlockResponse>, Status> {
        unary!(self.core.unlock(r), Error::recipe_status)
    }
}
