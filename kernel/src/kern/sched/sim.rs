//! Host simulator of processors and threads over ticks (not written yet).
