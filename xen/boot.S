/*
 * boot.S: PVH entry, the switch to 64-bit long mode, and the interrupt
 * stubs.
 *
 * Xen starts us in 32-bit protected mode, paging off, flat segments, IF=0,
 * with %ebx = physical address of struct hvm_start_info. Nothing else is
 * set up: no stack, GDT, IDT or page tables of ours. Everything up to the
 * far jump into 64-bit code must therefore be assembly.
 *
 * Page tables (identity, 2 MiB pages, built by a loop here rather than
 * literal tables): 0-4 GiB covers RAM, start_info, the special pages just
 * below 0xFF000000 (console, xenstore) and the LAPIC; 4-5 GiB is the
 * window where foreign grants will be mapped (nothing is populated there
 * by Xen, so mapping a grant never replaces one of our RAM frames).
 */
#define BOOT_CS64 0x08
#define BOOT_DS 0x10
#define PTE_P 0x1
#define PTE_W 0x2
#define PTE_PS 0x80
#define CR0_PE 0x1
#define CR0_MP 0x2
#define CR0_NE 0x20
#define CR0_WP 0x10000
#define CR0_PG 0x80000000
#define CR4_PAE 0x20
#define CR4_OSFXSR 0x200
#define CR4_OSXMMEXCPT 0x400
#define MSR_EFER 0xc0000080
#define EFER_LME 0x100
#define PD_COUNT 5 /* GiB identity-mapped: 4 + 1 for the grant window */

/* ELF note read by Xen's loader: the 32-bit physical entry point. */
    .section .note.qwall.pvh, "a", @note
    .balign 4
    .long 4          /* name size, "Xen\0" */
    .long 4          /* descriptor size */
    .long 18         /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long boot_pvh32

    .section .text.boot, "ax"
    .code32
    .globl boot_pvh32
boot_pvh32:
    cld
    /* Xen zeroes our .bss when it loads the ELF; clear it again anyway so
     * that a loader which does not cannot leave stale page-table bits. */
    movl %ebx, %esi
    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    shrl $2, %ecx
    xorl %eax, %eax
    rep stosl
    movl %esi, boot_start_info
    movl $boot_stack_top, %esp

    /* PML4[0] -> PDPT */
    movl $boot_pdpt, %eax
    orl $(PTE_P | PTE_W), %eax
    movl %eax, boot_pml4

    /* PDPT[i] -> PD[i], i < PD_COUNT */
    xorl %ecx, %ecx
1:  movl %ecx, %eax
    shll $12, %eax
    addl $boot_pd, %eax
    orl $(PTE_P | PTE_W), %eax
    movl %eax, boot_pdpt(, %ecx, 8)
    incl %ecx
    cmpl $PD_COUNT, %ecx
    jb 1b

    /* PD entries: 512 * PD_COUNT 2 MiB pages, entry n maps n << 21. The
     * high dword carries bits 32+ of the address (n >> 11). */
    xorl %ecx, %ecx
2:  movl %ecx, %eax
    shll $21, %eax
    orl $(PTE_P | PTE_W | PTE_PS), %eax
    movl %eax, boot_pd(, %ecx, 8)
    movl %ecx, %eax
    shrl $11, %eax
    movl %eax, boot_pd + 4(, %ecx, 8)
    incl %ecx
    cmpl $(512 * PD_COUNT), %ecx
    jb 2b

    lgdt boot_gdt_desc
    movl %cr4, %eax
    orl $(CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT), %eax
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl $MSR_EFER, %ecx
    rdmsr
    orl $EFER_LME, %eax
    wrmsr
    movl %cr0, %eax
    orl $(CR0_PE | CR0_MP | CR0_NE | CR0_WP | CR0_PG), %eax
    movl %eax, %cr0
    ljmp $BOOT_CS64, $boot_long

    .code64
boot_long:
    movl $BOOT_DS, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    xorl %eax, %eax
    movl %eax, %fs
    movl %eax, %gs
    movq $boot_stack_top, %rsp
    xorl %ebp, %ebp
    movl boot_start_info, %edi
    call xen_main
    /* xen_main never returns; if it does, stop this vCPU for good. */
3:  cli
    hlt
    jmp 3b

/*
 * Exception stubs: each pushes a dummy error code when the CPU does not,
 * then its vector, and joins the common path, which hands a struct
 * cpu_frame (see cpu.h) to cpu_trap() in C. cpu_trap reports and stops.
 */
.macro TRAP_NOERR vec
    .globl cpu_trap_\vec
cpu_trap_\vec:
    pushq $0
    pushq $\vec
    jmp trap_common
.endm
.macro TRAP_ERR vec
    .globl cpu_trap_\vec
cpu_trap_\vec:
    pushq $\vec
    jmp trap_common
.endm

    .text
TRAP_NOERR 0
TRAP_NOERR 1
TRAP_NOERR 2
TRAP_NOERR 3
TRAP_NOERR 4
TRAP_NOERR 5
TRAP_NOERR 6
TRAP_NOERR 7
TRAP_ERR 8
TRAP_NOERR 9
TRAP_ERR 10
TRAP_ERR 11
TRAP_ERR 12
TRAP_ERR 13
TRAP_ERR 14
TRAP_NOERR 15
TRAP_NOERR 16
TRAP_ERR 17
TRAP_NOERR 18
TRAP_NOERR 19
TRAP_NOERR 20
TRAP_ERR 21

trap_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    andq $-16, %rsp
    call cpu_trap
4:  cli
    hlt
    jmp 4b

/*
 * Event-channel upcall vector. Interrupts are only ever enabled for the
 * `sti; hlt` of the idle loop, so this runs with nothing else in flight;
 * the C side only acknowledges (all work is done by the main loop). The
 * runtime is built without SSE, so only the integer caller-saved
 * registers need saving.
 */
    .globl cpu_upcall_entry
cpu_upcall_entry:
    pushq %rax
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    movq %rsp, %rax
    andq $-16, %rsp
    pushq %rax
    subq $8, %rsp
    call cpu_upcall
    addq $8, %rsp
    popq %rsp
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rax
    iretq

    /* Spurious LAPIC interrupts need no EOI. */
    .globl cpu_spurious_entry
cpu_spurious_entry:
    iretq

    /* Writable: cpu.c fills the TSS descriptor and `ltr` marks it busy. */
    .data
    .balign 16
    .globl boot_gdt
boot_gdt:
    .quad 0                      /* null */
    .quad 0x00af9b000000ffff     /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00cf93000000ffff     /* 0x10: data, DPL 0 */
    .quad 0, 0                   /* 0x18: 64-bit TSS (cpu_init_idt) */
boot_gdt_end:
    .balign 4
    .word 0
boot_gdt_desc:
    .word boot_gdt_end - boot_gdt - 1
    .quad boot_gdt

    .data
    .balign 8
    .globl boot_start_info
boot_start_info:
    .long 0

    /* Filled by Xen when its MSR is written (cpu.c); executable. */
    .section .text.hypercall, "ax"
    .balign 4096
    .globl hypercall_page
hypercall_page:
    .fill 4096, 1, 0xc3

    .section .bss
    .balign 4096
    .globl boot_pml4
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
    .globl boot_pd
boot_pd:
    .skip 4096 * PD_COUNT
    /* Unmapped by cpu_protect(): running off the stack faults at once. */
    .balign 4096
    .globl boot_stack_guard
boot_stack_guard:
    .skip 4096
    .globl boot_stack_bottom
boot_stack_bottom:
    .skip 65536
    .globl boot_stack_top
boot_stack_top:
    /* Separate stack for double faults (IST 1), so that a stack overflow
     * is still reported. */
    .skip 8192
    .globl boot_df_stack_top
boot_df_stack_top:
    .section .note.GNU-stack, "", @progbits
