//! The CLUSTERPRO adapters and their pure core.
//!
//! Why this module exists: a CLUSTERPRO cluster is observed and changed in two ways that both end
//! in text: commands on a node (`clpstat`, `clpgrp`, `clpmdstat`, `clpcfctrl`) whose output must be
//! read, and the `clp.conf` XML that `clpcfctrl --pull/--push` moves, which must be edited without
//! disturbing anything mirrorctl does not own. Both are pure functions here, tested against
//! fixtures; the adapters that call them (over the command transport, or the REST API below) are
//! separate modules.
//!
//! - [`parse`]: `clpstat`, `clpgrp -n`, `clpmdstat -m`, `clpmdstat -l` output → port types.
//! - [`conf`]: read the md resources and group start attributes from `clp.conf`, and apply
//!   [`crate::ports::cluster::ConfigChange`]s by splicing text, byte-for-byte elsewhere.
//! - [`rest`]: the [`crate::ports::Cluster`] port over the `RESTful` API (X 4.2+): status and the
//!   group/resource/server operations, polled to completion.
//! - [`hybrid`]: REST for status and operations, the command adapter for mirror status and
//!   configuration, as one port.

pub mod conf;
pub mod hybrid;
pub mod parse;
pub mod rest;
