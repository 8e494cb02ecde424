//! A faithful simulator of Layer's v1 REST API and its login.
