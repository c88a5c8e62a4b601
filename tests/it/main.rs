//! mirrorctl's integration tests, compiled as one test binary (`cargo test --test it`): one
//! module per area, plus the shared helpers under [`support`] (the simulated-world harness, the
//! moto server, the fake SSM endpoint, fake disk tools and fake CLUSTERPRO commands, and the
//! CLUSTERPRO + Linux-node fake on top of moto). One binary links the AWS SDKs once instead of
//! once per test file.

mod support;

mod account_throttle;
mod accounts;
mod backup;
mod bench;
mod chaos;
mod cli;
mod cloud_conformance;
mod cluster_answers;
mod clusterpro;
mod clusterpro_commands;
mod clusterpro_rest;
mod controller;
mod crash_resume;
mod daemon;
mod deploy;
mod desired_state_examples;
mod dr_copies;
mod fast_restore;
mod lab_json;
mod layers;
mod mirror_set;
mod moto_ec2;
mod moto_flows;
mod moto_plan;
mod node_recipes;
mod notify;
mod observe_refresh;
mod planner_decisions;
mod planner_props;
mod request_change;
mod schedules;
mod secret_sources;
mod set_restore;
mod several_md;
mod sim_faults;
mod sim_flows;
mod sim_world;
mod spec_invalid;
mod spec_validate_paths;
mod ssm_transport;
mod store;
mod vendor;
mod volume_loading;
