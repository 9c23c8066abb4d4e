//! When a task ends for want of anyone to name it: the policy behind `kern::task`'s
//! threadless tasks, as plain data so that the host tests can check it. Not the mechanism
//! (the senders hook, the deferred ends): that is `kern::task`.

/// Whether a task must be ended by the kernel: it has no threads (`live_threads`), and
/// either no program the kernel started is left (`programs_left`: the run is over but for
/// such tasks), or no send right to its port exists (`port_srights`, rights in messages
/// included) but the one its own space holds (`own_space_holds`: every task that called
/// `mach_task_self` has it, and it would keep the task alive forever). A task with threads
/// never is: it may still make rights to itself.
pub fn must_end(
    live_threads: usize,
    port_srights: u32,
    own_space_holds: bool,
    programs_left: usize,
) -> bool {
    live_threads == 0 && (programs_left == 0 || port_srights <= u32::from(own_space_holds))
}

#[cfg(test)]
mod tests {
    use super::must_end;

    #[test]
    fn a_task_with_threads_lives() {
        assert!(!must_end(1, 0, false, 1));
        assert!(!must_end(3, 0, true, 0));
    }

    #[test]
    fn a_threadless_task_lives_while_another_can_name_it() {
        assert!(!must_end(0, 1, false, 1), "one right held elsewhere");
        assert!(!must_end(0, 2, true, 1), "its own and one elsewhere");
        assert!(must_end(0, 0, false, 1), "no right at all");
        assert!(must_end(0, 1, true, 1), "only its own");
    }

    #[test]
    fn once_the_programs_are_over_every_threadless_task_ends() {
        assert!(must_end(0, 5, false, 0));
        assert!(!must_end(1, 5, false, 0));
    }
}
