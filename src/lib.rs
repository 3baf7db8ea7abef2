//! trunkwarden: git hooks and a forge bot that keep trunk-based repositories honest.
#![forbid(unsafe_code)]

pub mod commands;
pub mod config;
pub mod diagnose;
pub mod engine;
pub mod event;
pub mod forge;
pub mod git;
pub mod hook;
pub mod policy;
pub mod queue;
pub mod secrets;
pub mod server;
pub mod tasks;
pub mod ui;
pub mod webhook;
