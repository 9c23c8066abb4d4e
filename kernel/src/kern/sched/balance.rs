//! Load-balancing decisions: pure functions over plain data, tested on the host (with a
//! simulator of processors and threads over ticks that drives the same functions the
//! kernel calls). The mechanism is `sched::migrate`.
