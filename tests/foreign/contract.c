/*
 * contract: a first program built by GCC, not by this project's Rust toolchain, with no
 * C library. `cargo xtask test` builds it with aarch64-linux-gnu-gcc and boots it with
 * `--init`, to show that a foreign static ELF starts under the documented contract
 * (README, "Foreign programs"): the argument vector on the initial stack, the
 * host-privileged and device port names as decimal text in argv[1] and argv[2], the
 * --init-args words after them, and GNU Mach's trap numbers and registers.
 */

typedef unsigned long u64;

/* GNU Mach trap numbers (DESIGN.md 1): negated in x8, arguments in x0-x5, result in x0. */
enum {
	MACH_TASK_SELF = 28,
	MACH_PRINT = 30,
	TASK_TERMINATE = 69,
};

static u64 trap1(long number, u64 a0)
{
	register u64 x0 __asm__("x0") = a0;
	register long x8 __asm__("x8") = -number;
	__asm__ volatile("svc #0"
			 : "+r"(x0), "+r"(x8)
			 :
			 : "x1", "x2", "x3", "x4", "x5", "x6", "x7", "memory");
	return x0;
}

static void print(const char *s)
{
	trap1(MACH_PRINT, (u64)s);
}

static int equal(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

/* A port name as decimal text: nonzero, digits only. */
static int is_name(const char *s)
{
	u64 v = 0;
	if (!*s)
		return 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return 0;
		v = v * 10 + (u64)(*s - '0');
	}
	return v != 0;
}

static int failures;

static void check(int ok, const char *what)
{
	print(ok ? "contract: ok: " : "contract: FAILED: ");
	print(what);
	print("\n");
	failures += !ok;
}

/* Called by _start with the initial stack pointer: argc, then argv[], NULL, envp[], NULL. */
void contract_main(u64 *sp)
{
	long argc = (long)sp[0];
	char **argv = (char **)(sp + 1);

	check(((u64)sp & 15) == 0, "sp is 16-byte aligned");
	check(argc == 5, "argc is 5 (name, two port names, two --init-args words)");
	if (argc == 5) {
		check(argv[5] == 0 && argv[6] == 0, "argv and envp end with NULL");
		check(equal(argv[0], "contract"), "argv[0] is the program's name");
		check(is_name(argv[1]), "argv[1] is a port name in decimal");
		check(is_name(argv[2]), "argv[2] is a port name in decimal");
		check(equal(argv[3], "alpha") && equal(argv[4], "beta"),
		      "argv[3] and argv[4] are the --init-args words");
	}
	u64 task = trap1(MACH_TASK_SELF, 0);
	check(task != 0, "mach_task_self gives a name");
	if (failures == 0)
		print("gnumach-test-success-and-reboot\n");
	else
		print("gnumach-test-failure: contract\n");
	trap1(TASK_TERMINATE, task);
	for (;;)
		;
}

__asm__(".global _start\n"
	"_start:\n"
	"	mov x0, sp\n"
	"	bl contract_main\n"
	"1:	b 1b\n");
