//! The local load balancer, the twin of the ALB: two listeners (HTTP answering 301, HTTPS with TLS,
//! HTTP/2 and HTTP/1.1), the request path to the instances of the target group, every client state
//! bounded in time and size, our error pages and an access log. It knows instances only as
//! targets of the [`pool`]; starting and replacing them is the group's job (`super::group`).
pub mod accesslog;
mod budget;
pub mod clientbody;
mod conn_io;
pub mod headers;
pub mod limits;
mod listen;
pub mod pages;
pub mod pool;
pub mod proxy;
pub mod split;
pub mod tls;
pub mod upstream;
pub mod workers;
