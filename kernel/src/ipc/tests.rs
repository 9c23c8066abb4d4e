//! Host tests of the IPC core.
