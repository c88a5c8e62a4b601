//! The CLUSTERPRO adapters: output parsers, `clp.conf` editing, and the port over commands.
//!
//! Why this module exists: a CLUSTERPRO cluster is observed and changed in two ways that both end
//! in text: commands on a node (`clpstat`, `clpgrp`, `clpmdstat`, `clpcfctrl`) whose output must be
//! read, and the `clp.conf` XML that `clpcfctrl --pull/--push` moves, which must be edited without
//! disturbing anything mirrorctl does not own. Both are pure functions ([`parse`], [`conf`]), tested
//! against fixtures; [`commands`] drives them through a node transport.
//!
//! - [`parse`]: `clpstat`, `clpgrp -n`, `clpmdstat -m`, `clpmdstat -l`, `clpdiskctrl get guid`
//!   output → port types.
//! - [`conf`]: read the md resources and group start attributes from `clp.conf`, and apply
//!   [`crate::ports::cluster::ConfigChange`]s by splicing text, byte-for-byte elsewhere.
//! - [`commands`]: [`commands::CommandCluster`], the [`crate::ports::Cluster`] port over `clp*`
//!   commands run through a [`crate::adapters::node::transport::Transport`].

pub mod commands;
pub mod conf;
pub mod parse;
