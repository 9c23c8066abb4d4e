// Entry of every CPU: the Linux arm64 Image header, the drop from EL2 to EL1, the boot
// page tables and the switch to the kernel's high virtual addresses. Everything before
// `br` to a high address runs with the MMU off at whatever physical address the loader
// chose, so it uses only PC-relative addressing (adr/adrp). Numbers come from boot.rs.

.section .text.boot, "ax"
.global _start
_start:
    // Linux arm64 Image header (Documentation/arch/arm64/booting.rst).
    b       primary_entry               // code0
    .long   0                           // code1
    .quad   0                           // text_offset
    .quad   __image_size                // image_size: covers BSS, stacks and boot tables
    .quad   {IMAGE_FLAGS}               // little-endian, 4 KiB pages, place anywhere
    .quad   0, 0, 0                     // reserved
    .ascii  "ARM\x64"                   // magic
    .long   0                           // no PE header

// The boot CPU: x0 holds the device tree's physical address.
primary_entry:
    mov     x19, x0                     // device tree (physical)
    adr     x20, _start                 // where the loader put us (physical)
    bl      el2_to_el1
    msr     daifset, #0xf

    // Zero .bss with the caches off, dropping any stale lines before and after.
    adrp    x0, __bss_start
    add     x0, x0, :lo12:__bss_start
    adrp    x1, __bss_end
    add     x1, x1, :lo12:__bss_end
    bl      dcache_inval_range
    adrp    x0, __bss_start
    add     x0, x0, :lo12:__bss_start
1:  cmp     x0, x1
    b.hs    2f
    stp     xzr, xzr, [x0], #16
    b       1b
2:
    bl      build_boot_tables
    adrp    x0, {BOOT_TABLES}
    add     x0, x0, :lo12:{BOOT_TABLES}
    add     x1, x0, #{TABLES_SIZE}
    bl      dcache_inval_range
    adrp    x0, {BOOT_TABLES}
    add     x0, x0, :lo12:{BOOT_TABLES}
    bl      enable_mmu
    ldr     x0, =primary_high
    br      x0

// Secondary CPUs, started by PSCI CPU_ON or released from the spin table.
.global secondary_entry
secondary_entry:
    bl      el2_to_el1
    msr     daifset, #0xf
    adrp    x0, {BOOT_TABLES}
    add     x0, x0, :lo12:{BOOT_TABLES}
    bl      enable_mmu
    ldr     x0, =secondary_high
    br      x0

// If entered at EL2, make EL1 usable and return to the caller at EL1 (DESIGN.md 4).
// Clobbers x0.
el2_to_el1:
    mrs     x0, CurrentEL
    lsr     x0, x0, #2
    cmp     x0, #2
    b.ne    9f
    ldr     x0, ={HCR_EL2}
    msr     hcr_el2, x0
    mrs     x0, cnthctl_el2
    orr     x0, x0, #{CNTHCTL_EL1_ACCESS}
    msr     cnthctl_el2, x0
    msr     cntvoff_el2, xzr
    ldr     x0, ={CPTR_EL2}
    msr     cptr_el2, x0
    msr     hstr_el2, xzr
    mrs     x0, pmcr_el0                // let EL1 use every PMU counter
    ubfx    x0, x0, #11, #5
    msr     mdcr_el2, x0
    mrs     x0, midr_el1
    msr     vpidr_el2, x0
    mrs     x0, mpidr_el1
    msr     vmpidr_el2, x0
    mrs     x0, id_aa64pfr0_el1         // GICv3 CPU interface present?
    ubfx    x0, x0, #24, #4
    cbz     x0, 1f
    mrs     x0, icc_sre_el2
    orr     x0, x0, #{ICC_SRE_EL2_BITS}
    msr     icc_sre_el2, x0
    isb
    msr     ich_hcr_el2, xzr
1:  ldr     x0, ={SCTLR_EL1_OFF}
    msr     sctlr_el1, x0
    mov     x0, #{SPSR_EL1H_MASKED}
    msr     spsr_el2, x0
    msr     elr_el2, x30
    isb
    eret
9:  ret

// Boot page tables (MMU off, x20 = load address): an identity map of the 1 GiB blocks
// around the image, needed only until the branch to high addresses, and the image at
// KIMAGE_VA with 4 KiB pages, all RWX for EL1 until the kernel applies W^X.
build_boot_tables:
    adrp    x0, {BOOT_TABLES}
    add     x0, x0, :lo12:{BOOT_TABLES}
    // Identity: id_l0[pa >> 39] -> id_l1; id_l1[pa >> 30] and the next entry -> 1 GiB blocks.
    add     x1, x0, #{ID_L1}
    ubfx    x2, x20, #39, #9
    orr     x3, x1, #{DESC_TABLE}
    str     x3, [x0, x2, lsl #3]
    ubfx    x2, x20, #30, #9
    lsr     x4, x20, #30
    lsl     x4, x4, #30
    ldr     x5, ={BLOCK_NORMAL_RWX}
    orr     x3, x4, x5
    str     x3, [x1, x2, lsl #3]
    cmp     x2, #511
    b.eq    1f
    add     x2, x2, #1
    mov     x6, #0x40000000
    add     x3, x3, x6
    str     x3, [x1, x2, lsl #3]
1:
    // Kernel image: k_l0 -> k_l1 -> k_l2 -> k_l3[0..N].
    add     x1, x0, #{K_L0}
    add     x2, x0, #{K_L1}
    orr     x3, x2, #{DESC_TABLE}
    str     x3, [x1, #{K_L0_INDEX} * 8]
    add     x1, x0, #{K_L2}
    orr     x3, x1, #{DESC_TABLE}
    str     x3, [x2, #{K_L1_INDEX} * 8]
    add     x4, x0, #{K_L3}
    mov     x5, #0
2:  orr     x3, x4, #{DESC_TABLE}
    str     x3, [x1, x5, lsl #3]
    add     x4, x4, #4096
    add     x5, x5, #1
    cmp     x5, #{BOOT_L3_TABLES}
    b.lo    2b
    add     x1, x0, #{K_L3}
    ldr     x2, =__image_size
    ldr     x6, ={PAGE_NORMAL_RWX}
    mov     x5, #0
3:  add     x3, x20, x5
    orr     x3, x3, x6
    lsr     x7, x5, #12
    str     x3, [x1, x7, lsl #3]
    add     x5, x5, #4096
    cmp     x5, x2
    b.lo    3b
    dsb     sy
    ret

// Turn the MMU on with the boot tables (x0 = their physical address). Returns to the
// caller's physical address, which the identity map still covers. Clobbers x1-x4.
enable_mmu:
    ldr     x1, ={MAIR}
    msr     mair_el1, x1
    ldr     x1, ={TCR}
    mrs     x2, id_aa64mmfr0_el1
    and     x3, x2, #0xf                // PARange, capped at 48 bits
    cmp     x3, #{PARANGE_48}
    b.ls    1f
    mov     x3, #{PARANGE_48}
1:  bfi     x1, x3, #{TCR_IPS_SHIFT}, #3
    ubfx    x4, x2, #4, #4              // ASIDBits: 2 means 16-bit ASIDs
    cmp     x4, #2
    b.ne    2f
    orr     x1, x1, #{TCR_AS}
2:  msr     tcr_el1, x1
    add     x1, x0, #{ID_L0}
    msr     ttbr0_el1, x1
    add     x1, x0, #{K_L0}
    msr     ttbr1_el1, x1
    isb
    tlbi    vmalle1
    ic      iallu
    dsb     nsh
    isb
    ldr     x1, ={SCTLR_EL1_ON}
    msr     sctlr_el1, x1
    isb
    ret

// Invalidate data cache lines covering [x0, x1) to the point of coherency. Clobbers x2, x3.
dcache_inval_range:
    mrs     x3, ctr_el0
    ubfx    x3, x3, #16, #4             // DminLine: log2 of words per line
    mov     x2, #4
    lsl     x2, x2, x3
    sub     x3, x2, #1
    bic     x0, x0, x3
1:  dc      ivac, x0
    add     x0, x0, x2
    cmp     x0, x1
    b.lo    1b
    dsb     sy
    ret

// --- From here on the MMU is on and we run at the link address. ---

primary_high:
    ldr     x1, ={BOOT_STACK}
    add     x1, x1, #{BOOT_STACK_SIZE}
    mov     sp, x1
    mov     x0, x19
    mov     x1, x20
    bl      {KERNEL_MAIN}
    b       park

// A secondary CPU takes its stack and index from the start slot, after checking that the
// slot was written for it (a late CPU that the kernel gave up on must not take another's).
secondary_high:
    ldr     x0, ={START_SLOT}
    ldr     x1, [x0, #{SLOT_MPIDR}]
    mrs     x2, mpidr_el1
    ldr     x3, ={MPIDR_AFF_MASK}
    and     x2, x2, x3
    cmp     x1, x2
    b.ne    park
    ldr     x1, [x0, #{SLOT_SP}]
    mov     sp, x1
    ldr     x0, [x0, #{SLOT_CPU}]
    bl      {SECONDARY_MAIN}
park:
    wfi
    b       park
