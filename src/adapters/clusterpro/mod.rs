//! The pure core of the CLUSTERPRO adapters.
//!
//! Why this module exists: a CLUSTERPRO cluster is observed and changed in two ways that both end
//! in text: commands on a node (`clpstat`, `clpgrp`, `clpmdstat`, `clpcfctrl`) whose output must be
//! read, and the `clp.conf` XML that `clpcfctrl --pull/--push` moves, which must be edited without
//! disturbing anything mirrorctl does not own. Both are pure functions here, tested against
//! fixtures; the command transport and the REST client that call them are separate modules.
//!
//! - [`parse`]: `clpstat`, `clpgrp -n`, `clpmdstat -m`, `clpmdstat -l` output → port types.
//! - [`conf`]: read the md resources and group start attributes from `clp.conf`, and apply
//!   [`crate::ports::cluster::ConfigChange`]s by splicing text, byte-for-byte elsewhere.

pub mod commands;
pub mod conf;
pub mod parse;
