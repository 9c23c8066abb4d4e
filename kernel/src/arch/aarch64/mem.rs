//! `memcpy`, `memmove` and `memset` for the kernel, replacing the portable ones the
//! compiler's builtins provide (weak symbols). Those copy a byte at a time whenever source
//! and destination are not equally aligned, which is the common case for the small moves
//! the compiler emits for enums at odd offsets: dozens of instructions for 28 bytes. These
//! move 16 bytes per load/store pair whatever the alignment, as the Arm architecture allows
//! for Normal memory when `SCTLR_EL1.A` is clear (`boot.rs` leaves it clear).
//!
//! Before the MMU is on every access is Device memory, where an unaligned access faults:
//! while `SCTLR_EL1.M` is clear they go a byte at a time. Nothing calls them on MMIO.

core::arch::global_asm!(
    r#"
    .section .text.memcpy, "ax", %progbits
    .global memcpy
    .type memcpy, %function
    .p2align 4
// x0 destination, x1 source, x2 length; returns the destination.
memcpy:
    mov     x3, x0
    mrs     x9, sctlr_el1
    tbz     x9, #0, 7f
    cmp     x2, #16
    b.lo    2f
1:  ldp     x4, x5, [x1], #16
    sub     x2, x2, #16
    stp     x4, x5, [x3], #16
    cmp     x2, #16
    b.hs    1b
    // Fewer than 16 left: bits 3-0 of x2 say which of 8, 4, 2 and 1 remain.
2:  tbz     x2, #3, 3f
    ldr     x4, [x1], #8
    str     x4, [x3], #8
3:  tbz     x2, #2, 4f
    ldr     w4, [x1], #4
    str     w4, [x3], #4
4:  tbz     x2, #1, 5f
    ldrh    w4, [x1], #2
    strh    w4, [x3], #2
5:  tbz     x2, #0, 6f
    ldrb    w4, [x1]
    strb    w4, [x3]
6:  ret
    // MMU off: one byte at a time.
7:  cbz     x2, 6b
8:  ldrb    w4, [x1], #1
    subs    x2, x2, #1
    strb    w4, [x3], #1
    b.ne    8b
    ret
    .size memcpy, . - memcpy

    .section .text.memmove, "ax", %progbits
    .global memmove
    .type memmove, %function
    .p2align 4
// As memcpy, for ranges that may overlap: forward unless the destination starts inside
// the source, then backward a byte at a time (rare).
memmove:
    sub     x9, x0, x1
    cmp     x9, x2
    b.hs    memcpy
    cbz     x2, 2f
    add     x3, x0, x2
    add     x1, x1, x2
1:  ldrb    w4, [x1, #-1]!
    subs    x2, x2, #1
    strb    w4, [x3, #-1]!
    b.ne    1b
2:  ret
    .size memmove, . - memmove

    .section .text.memset, "ax", %progbits
    .global memset
    .type memset, %function
    .p2align 4
// x0 destination, w1 byte value, x2 length; returns the destination.
memset:
    mov     x3, x0
    and     x1, x1, #0xff
    mrs     x9, sctlr_el1
    tbz     x9, #0, 7f
    orr     x1, x1, x1, lsl #8
    orr     x1, x1, x1, lsl #16
    orr     x1, x1, x1, lsl #32
    cmp     x2, #16
    b.lo    2f
1:  stp     x1, x1, [x3], #16
    sub     x2, x2, #16
    cmp     x2, #16
    b.hs    1b
2:  tbz     x2, #3, 3f
    str     x1, [x3], #8
3:  tbz     x2, #2, 4f
    str     w1, [x3], #4
4:  tbz     x2, #1, 5f
    strh    w1, [x3], #2
5:  tbz     x2, #0, 6f
    strb    w1, [x3]
6:  ret
7:  cbz     x2, 6b
8:  strb    w1, [x3], #1
    subs    x2, x2, #1
    b.ne    8b
    ret
    .size memset, . - memset
"#
);
