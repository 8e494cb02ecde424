//! Typed async client for Layer's v1 REST API.
