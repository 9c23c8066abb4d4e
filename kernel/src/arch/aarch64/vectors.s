// EL1 exception vectors. Every entry saves a full TrapFrame (exception.rs) on the current
// kernel stack and calls a Rust handler with its address; the handler may edit the frame,
// which is restored on return. Offsets come from exception.rs.

.macro SAVE_FRAME
    sub     sp, sp, #{FRAME_SIZE}
    stp     x0, x1, [sp, #16 * 0]
    stp     x2, x3, [sp, #16 * 1]
    stp     x4, x5, [sp, #16 * 2]
    stp     x6, x7, [sp, #16 * 3]
    stp     x8, x9, [sp, #16 * 4]
    stp     x10, x11, [sp, #16 * 5]
    stp     x12, x13, [sp, #16 * 6]
    stp     x14, x15, [sp, #16 * 7]
    stp     x16, x17, [sp, #16 * 8]
    stp     x18, x19, [sp, #16 * 9]
    stp     x20, x21, [sp, #16 * 10]
    stp     x22, x23, [sp, #16 * 11]
    stp     x24, x25, [sp, #16 * 12]
    stp     x26, x27, [sp, #16 * 13]
    stp     x28, x29, [sp, #16 * 14]
    mrs     x21, sp_el0
    stp     x30, x21, [sp, #{OFF_X30}]
    mrs     x22, elr_el1
    mrs     x23, spsr_el1
    stp     x22, x23, [sp, #{OFF_ELR}]
    mrs     x24, esr_el1
    mrs     x25, far_el1
    stp     x24, x25, [sp, #{OFF_ESR}]
.endm

.macro RESTORE_FRAME
    ldp     x22, x23, [sp, #{OFF_ELR}]
    msr     elr_el1, x22
    msr     spsr_el1, x23
    ldp     x30, x21, [sp, #{OFF_X30}]
    msr     sp_el0, x21
    ldp     x0, x1, [sp, #16 * 0]
    ldp     x2, x3, [sp, #16 * 1]
    ldp     x4, x5, [sp, #16 * 2]
    ldp     x6, x7, [sp, #16 * 3]
    ldp     x8, x9, [sp, #16 * 4]
    ldp     x10, x11, [sp, #16 * 5]
    ldp     x12, x13, [sp, #16 * 6]
    ldp     x14, x15, [sp, #16 * 7]
    ldp     x16, x17, [sp, #16 * 8]
    ldp     x18, x19, [sp, #16 * 9]
    ldp     x20, x21, [sp, #16 * 10]
    ldp     x22, x23, [sp, #16 * 11]
    ldp     x24, x25, [sp, #16 * 12]
    ldp     x26, x27, [sp, #16 * 13]
    ldp     x28, x29, [sp, #16 * 14]
    add     sp, sp, #{FRAME_SIZE}
    eret
.endm

// One vector (at most 32 instructions): save, call `handler(frame, kind)`, restore.
.macro VECTOR handler, kind
.balign 0x80
    SAVE_FRAME
    mov     x0, sp
    mov     x1, #\kind
    bl      \handler
    b       exception_return
.endm

.section .text.vectors, "ax"
.balign 0x800
.global exception_vectors
exception_vectors:
    // Current EL with SP_EL0: never used by the kernel.
    VECTOR {UNEXPECTED}, 0
    VECTOR {UNEXPECTED}, 1
    VECTOR {UNEXPECTED}, 2
    VECTOR {UNEXPECTED}, 3
    // Current EL with SP_EL1: the kernel.
.balign 0x80
    b       el1_sync_on_emergency_stack
    VECTOR {IRQ}, 5
    VECTOR {UNEXPECTED}, 6
    VECTOR {UNEXPECTED}, 7
    // Lower EL, AArch64: user space.
    VECTOR {EL0_SYNC}, 8
    VECTOR {IRQ}, 9
    VECTOR {UNEXPECTED}, 10
    VECTOR {UNEXPECTED}, 11
    // Lower EL, AArch32: not supported.
    VECTOR {UNEXPECTED}, 12
    VECTOR {UNEXPECTED}, 13
    VECTOR {UNEXPECTED}, 14
    VECTOR {UNEXPECTED}, 15

.global exception_return
exception_return:
    RESTORE_FRAME

// A synchronous exception in the kernel is always fatal (the kernel never faults on
// purpose: user memory is reached by software translation). It may be a kernel stack
// overflow into a guard page, so the report runs on this CPU's emergency stack
// (PerCpu.emergency_sp, through TPIDR_EL1). TPIDRRO_EL0 and TPIDR_EL0 serve as scratch for
// x0 and the old sp: their user values do not matter any more.
el1_sync_on_emergency_stack:
    msr     tpidrro_el0, x0
    mov     x0, sp
    msr     tpidr_el0, x0
    mrs     x0, tpidr_el1
    ldr     x0, [x0, #{PERCPU_EMERGENCY_SP}]
    mov     sp, x0
    mrs     x0, tpidrro_el0
    SAVE_FRAME
    mov     x0, sp
    mrs     x1, tpidr_el0
    bl      {EL1_SYNC}
    b       exception_return
