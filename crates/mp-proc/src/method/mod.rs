//! How each start method makes a process (see the table in
//! [`StartMethod`](crate::StartMethod)): each hands back a
//! [`Started`](crate::children::Started).

pub(crate) mod fork;
pub(crate) mod forkserver;
pub(crate) mod spawn;
