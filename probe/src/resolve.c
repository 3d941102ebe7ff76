/* Finding the real functions without dlsym: at start-up the probe records the dynamic symbol tables of the
 * objects loaded after it (dl_iterate_phdr, in the loader's search order: libc, libpthread on old glibc, ...)
 * and later looks names up in them itself (GNU or SysV hash, the default symbol version), as
 * dlsym(RTLD_NEXT) would. This keeps the probe's only DT_NEEDED at libc (no libdl.so.2 to load in every
 * process), takes no loader lock after start-up (hooks also run in vfork children) and allocates nothing. */
#include <elf.h>
#include <stddef.h>
#include <stdint.h>
#include "probe.h"
#include "sys.h"
#include "util.h"

#if UINTPTR_MAX == 0xffffffffffffffffu
typedef Elf64_Addr Addr;
typedef Elf64_Phdr Phdr;
typedef Elf64_Dyn Dyn;
typedef Elf64_Sym Sym;
typedef Elf64_Half Half;
#define ST_TYPE(i) ELF64_ST_TYPE(i)
#else
#error "64-bit only"
#endif

/* The leading fields of struct dl_phdr_info (glibc and musl agree on them). */
struct phdr_info {
	Addr addr;
	const char *name;
	const Phdr *phdr;
	Half phnum;
};
extern int dl_iterate_phdr(int (*cb)(struct phdr_info *, size_t, void *), void *data);

struct object {
	Addr base;
	const Sym *symtab;
	const char *strtab;
	const uint32_t *gnu_hash, *sysv_hash;
	const uint16_t *versym;
};

#define MAX_OBJECTS 64
static struct object objects[MAX_OBJECTS];
static int nobjects, scanned; /* scanned: 0 not yet, 1 busy, 2 done */

static int contains(const struct phdr_info *info, uintptr_t a)
{
	for (Half i = 0; i < info->phnum; i++) {
		const Phdr *ph = &info->phdr[i];
		if (ph->p_type == PT_LOAD && a >= info->addr + ph->p_vaddr && a < info->addr + ph->p_vaddr + ph->p_memsz)
			return 1;
	}
	return 0;
}

/* ptr turns a dynamic entry into an address: glibc relocates most of them in place, musl and the vdso don't. */
static const void *ptr(Addr base, Addr v) { return (const void *)(v < base ? base + v : v); }

static int record(struct phdr_info *info, size_t size, void *seen_self)
{
	(void)size;
	if (!*(int *)seen_self) {
		*(int *)seen_self = contains(info, (uintptr_t)&record);
		return 0; /* only the objects after the probe: RTLD_NEXT */
	}
	if (nobjects == MAX_OBJECTS)
		return 1;
	const Dyn *dyn = 0;
	for (Half i = 0; i < info->phnum; i++)
		if (info->phdr[i].p_type == PT_DYNAMIC)
			dyn = (const Dyn *)(info->addr + info->phdr[i].p_vaddr);
	if (!dyn)
		return 0;
	struct object o = {info->addr, 0, 0, 0, 0, 0};
	for (; dyn->d_tag != DT_NULL; dyn++) {
		switch (dyn->d_tag) {
		case DT_SYMTAB: o.symtab = ptr(o.base, dyn->d_un.d_ptr); break;
		case DT_STRTAB: o.strtab = ptr(o.base, dyn->d_un.d_ptr); break;
		case DT_GNU_HASH: o.gnu_hash = ptr(o.base, dyn->d_un.d_ptr); break;
		case DT_HASH: o.sysv_hash = ptr(o.base, dyn->d_un.d_ptr); break;
		case DT_VERSYM: o.versym = ptr(o.base, dyn->d_un.d_ptr); break;
		}
	}
	if (o.symtab && o.strtab && (o.gnu_hash || o.sysv_hash))
		objects[nobjects++] = o;
	return 0;
}

static long scan_tid, scan_pid;

void crs_resolve_init(void)
{
	int expect = 0;
	if (__atomic_load_n(&scanned, __ATOMIC_ACQUIRE) == 2)
		return;
	long tid = crs_sys0(SYS_gettid);
	if (!__atomic_compare_exchange_n(&scanned, &expect, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		if (__atomic_load_n(&scan_tid, __ATOMIC_RELAXED) == tid)
			return; /* called from inside the scan: "not found" */
		while (__atomic_load_n(&scanned, __ATOMIC_ACQUIRE) != 2) {
			long owner = __atomic_load_n(&scan_pid, __ATOMIC_RELAXED);
			if (owner && owner != crs_sys0(SYS_getpid))
				break; /* forked while another thread scanned: scan here */
			crs_sys0(SYS_sched_yield);
		}
		if (__atomic_load_n(&scanned, __ATOMIC_ACQUIRE) == 2)
			return;
		nobjects = 0;
	}
	__atomic_store_n(&scan_tid, tid, __ATOMIC_RELAXED);
	__atomic_store_n(&scan_pid, crs_sys0(SYS_getpid), __ATOMIC_RELAXED);
	int seen_self = 0;
	dl_iterate_phdr(record, &seen_self);
	__atomic_store_n(&scanned, 2, __ATOMIC_RELEASE);
}

/* usable: a defined function or object in its default version (a hidden version is a compatibility one). */
static const void *usable(const struct object *o, uint32_t i, const char *name)
{
	const Sym *s = &o->symtab[i];
	if (s->st_shndx == SHN_UNDEF || s->st_value == 0 || ST_TYPE(s->st_info) == STT_GNU_IFUNC)
		return 0;
	if (o->versym && (o->versym[i] & 0x8000))
		return 0;
	if (!crs_streq(o->strtab + s->st_name, name))
		return 0;
	return (const void *)(o->base + s->st_value);
}

static const void *lookup_gnu(const struct object *o, const char *name)
{
	const uint32_t *h = o->gnu_hash;
	uint32_t nbuckets = h[0], symoffset = h[1], bloom_size = h[2];
	const uint32_t *buckets = h + 4 + bloom_size * (sizeof(Addr) / 4);
	const uint32_t *chain = buckets + nbuckets;
	uint32_t hash = 5381;
	for (const char *c = name; *c; c++)
		hash = hash * 33 + (uint8_t)*c;
	uint32_t i = buckets[hash % nbuckets];
	if (i < symoffset)
		return 0;
	for (;; i++) {
		uint32_t ch = chain[i - symoffset];
		if ((ch | 1) == (hash | 1)) {
			const void *f = usable(o, i, name);
			if (f)
				return f;
		}
		if (ch & 1)
			return 0;
	}
}

static const void *lookup_sysv(const struct object *o, const char *name)
{
	const uint32_t *h = o->sysv_hash;
	uint32_t nbucket = h[0], hash = 0;
	const uint32_t *bucket = h + 2, *chain = bucket + nbucket;
	for (const char *c = name; *c; c++) {
		hash = (hash << 4) + (uint8_t)*c;
		uint32_t g = hash & 0xf0000000u;
		if (g)
			hash ^= g >> 24;
		hash &= ~g;
	}
	for (uint32_t i = bucket[hash % nbucket]; i != 0; i = chain[i]) {
		const void *f = usable(o, i, name);
		if (f)
			return f;
	}
	return 0;
}

void *crs_lookup(const char *name)
{
	crs_resolve_init();
	if (__atomic_load_n(&scanned, __ATOMIC_ACQUIRE) != 2)
		return 0;
	for (int i = 0; i < nobjects; i++) {
		const void *f = objects[i].gnu_hash ? lookup_gnu(&objects[i], name) : lookup_sysv(&objects[i], name);
		if (f)
			return (void *)f;
	}
	return 0;
}
