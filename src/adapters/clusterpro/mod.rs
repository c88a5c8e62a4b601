//! The CLUSTERPRO adapters: output parsers, `clp.conf` editing, and the ports over commands and
//! over the REST API.
//!
//! Why this module exists: a CLUSTERPRO cluster is observed and changed in two ways that both end
//! in text: commands on a node (`clpstat`, `clpgrp`, `clpmdstat`, `clpcfctrl`) whose output must be
//! read, and the `clp.conf` XML that `clpcfctrl --pull/--push` moves, which must be edited without
//! disturbing anything mirrorctl does not own. Both are pure functions ([`parse`], [`conf`]), tested
//! against fixtures; [`commands`] drives them through a node transport, [`rest`] speaks to the
//! REST API and [`hybrid`] joins the two.
//!
//! - [`parse`]: `clpstat`, `clpgrp -n`, `clpmdstat -m`, `clpmdstat -l`
//!   output → port types.
//! - [`conf`]: read the md resources and group start attributes from `clp.conf`, and apply
//!   [`crate::ports::cluster::ConfigChange`]s by splicing text, byte-for-byte elsewhere.
//! - [`commands`]: [`commands::CommandCluster`], the [`crate::ports::Cluster`] port over `clp*`
//!   commands run through a [`crate::adapters::node::transport::Transport`].
//! - [`rest`]: the [`crate::ports::Cluster`] port over the `RESTful` API (X 4.2+): status and the
//!   group/resource/server operations, polled to completion.
//! - [`rules`]: the state rules of a group or resource operation (refused before it; done,
//!   pending or failed after it), shared by [`commands`] and [`rest`].
//! - [`hybrid`]: REST for status and operations, the command adapter for mirror status and
//!   configuration, as one port.

pub mod commands;
pub mod conf;
pub mod hybrid;
pub mod parse;
pub mod rest;
pub(crate) mod rules;
