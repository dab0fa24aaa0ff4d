/* types.c: the partition type table of systemd 252 (sd-gpt.h, gpt.c),
 * restricted to the architectures we build for.
 *
 * Name resolution is what systemd's gpt_partition_type_uuid_from_string()
 * does: an exact, case-sensitive name, else a literal GUID.  The short names
 * ("root", "usr-verity", …) mean systemd's native architecture there; here
 * the image's architecture takes that place, and, as in systemd (whose table
 * lists the architecture-specific entries before the native aliases), a
 * short name reports its canonical architecture-specific name. */
#include "nix-repart-image/types.h"

#include <string.h>

#include "nix-repart-image/string-table.h"

typedef enum role {
        ROLE_ROOT,
        ROLE_ROOT_VERITY,
        ROLE_ROOT_VERITY_SIG,
        ROLE_USR,
        ROLE_USR_VERITY,
        ROLE_USR_VERITY_SIG,
        _ROLE_PER_ARCH_MAX,
        ROLE_ESP = _ROLE_PER_ARCH_MAX,
        ROLE_XBOOTLDR,
        ROLE_SWAP,
        ROLE_HOME,
        ROLE_SRV,
        ROLE_VAR,
        ROLE_TMP,
        ROLE_USER_HOME,
        ROLE_LINUX_GENERIC,
} role;

typedef struct entry {
        const char *guid;
        const char *name;
        nri_arch arch; /* _NRI_ARCH_INVALID: any architecture */
        role role;
} entry;

/* The GUIDs are those of systemd 252's src/systemd/sd-gpt.h (the
 * Discoverable Partitions Specification). */
static const entry table[] = {
    {"4f68bce3-e8cd-4db1-96e7-fbcaf984b709", "root-x86-64", NRI_ARCH_X86_64, ROLE_ROOT},
    {"2c7357ed-ebd2-46d9-aec1-23d437ec2bf5", "root-x86-64-verity", NRI_ARCH_X86_64, ROLE_ROOT_VERITY},
    {"41092b05-9fc8-4523-994f-2def0408b176", "root-x86-64-verity-sig", NRI_ARCH_X86_64,
     ROLE_ROOT_VERITY_SIG},
    {"8484680c-9521-48c6-9c11-b0720656f69e", "usr-x86-64", NRI_ARCH_X86_64, ROLE_USR},
    {"77ff5f63-e7b6-4633-acf4-1565b864c0e6", "usr-x86-64-verity", NRI_ARCH_X86_64, ROLE_USR_VERITY},
    {"e7bb33fb-06cf-4e81-8273-e543b413e2e2", "usr-x86-64-verity-sig", NRI_ARCH_X86_64, ROLE_USR_VERITY_SIG},

    {"b921b045-1df0-41c3-af44-4c6f280d3fae", "root-arm64", NRI_ARCH_ARM64, ROLE_ROOT},
    {"df3300ce-d69f-4c92-978c-9bfb0f38d820", "root-arm64-verity", NRI_ARCH_ARM64, ROLE_ROOT_VERITY},
    {"6db69de6-29f4-4758-a7a5-962190f00ce3", "root-arm64-verity-sig", NRI_ARCH_ARM64, ROLE_ROOT_VERITY_SIG},
    {"b0e01050-ee5f-4390-949a-9101b17104e9", "usr-arm64", NRI_ARCH_ARM64, ROLE_USR},
    {"6e11a4e7-fbca-4ded-b9e9-e1a512bb664e", "usr-arm64-verity", NRI_ARCH_ARM64, ROLE_USR_VERITY},
    {"c23ce4ff-44bd-4b00-b2d4-b41b3419e02a", "usr-arm64-verity-sig", NRI_ARCH_ARM64, ROLE_USR_VERITY_SIG},

    {"c12a7328-f81f-11d2-ba4b-00a0c93ec93b", "esp", _NRI_ARCH_INVALID, ROLE_ESP},
    {"bc13c2ff-59e6-4262-a352-b275fd6f7172", "xbootldr", _NRI_ARCH_INVALID, ROLE_XBOOTLDR},
    {"0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", "swap", _NRI_ARCH_INVALID, ROLE_SWAP},
    {"933ac7e1-2eb4-4f13-b844-0e14e2aef915", "home", _NRI_ARCH_INVALID, ROLE_HOME},
    {"3b8f8425-20e0-4f3b-907f-1a25a76f98e8", "srv", _NRI_ARCH_INVALID, ROLE_SRV},
    {"4d21b016-b534-45c2-a9fb-5c16e091fd2d", "var", _NRI_ARCH_INVALID, ROLE_VAR},
    {"7ec6f557-3bc5-4aca-b293-16ef5df639d1", "tmp", _NRI_ARCH_INVALID, ROLE_TMP},
    {"773f91ef-66d4-49b5-bd83-d683bf40ad16", "user-home", _NRI_ARCH_INVALID, ROLE_USER_HOME},
    {"0fc63daf-8483-4772-8e79-3d69d8477de4", "linux-generic", _NRI_ARCH_INVALID, ROLE_LINUX_GENERIC},
};

#define TABLE_SIZE (sizeof(table) / sizeof(table[0]))

/* The names systemd resolves to its native architecture's entry. */
static const char *const short_names[_ROLE_PER_ARCH_MAX] = {
    [ROLE_ROOT] = "root", [ROLE_ROOT_VERITY] = "root-verity", [ROLE_ROOT_VERITY_SIG] = "root-verity-sig",
    [ROLE_USR] = "usr",   [ROLE_USR_VERITY] = "usr-verity",   [ROLE_USR_VERITY_SIG] = "usr-verity-sig",
};

static const char *const nri_arch_table[_NRI_ARCH_MAX] = {
    [NRI_ARCH_X86_64] = "x86-64",
    [NRI_ARCH_ARM64] = "arm64",
};
NRI_DEFINE_STRING_TABLE_LOOKUP(nri_arch, nri_arch);

nri_arch nri_arch_from_nix_system(const char *system) {
        if (!system)
                return _NRI_ARCH_INVALID;
        if (strcmp(system, "x86_64-linux") == 0)
                return NRI_ARCH_X86_64;
        if (strcmp(system, "aarch64-linux") == 0)
                return NRI_ARCH_ARM64;
        return _NRI_ARCH_INVALID;
}

/* systemd's gpt_partition_type_knows_read_only(): the verity data
 * partitions are included to make the implied read-only state explicit;
 * the signature partitions are not. */
static bool role_knows_read_only(role r) {
        switch (r) {
        case ROLE_ROOT:
        case ROLE_ROOT_VERITY:
        case ROLE_USR:
        case ROLE_USR_VERITY:
        case ROLE_HOME:
        case ROLE_SRV:
        case ROLE_VAR:
        case ROLE_TMP:
        case ROLE_XBOOTLDR:
                return true;
        default:
                return false;
        }
}

/* systemd's gpt_partition_type_knows_growfs(): the types that carry a
 * writable file system a booting system mounts. */
static bool role_knows_growfs(role r) {
        switch (r) {
        case ROLE_ROOT:
        case ROLE_USR:
        case ROLE_HOME:
        case ROLE_SRV:
        case ROLE_VAR:
        case ROLE_TMP:
        case ROLE_XBOOTLDR:
                return true;
        default:
                return false;
        }
}

/* systemd's gpt_partition_type_knows_no_auto(): the types that
 * systemd-gpt-auto-generator would mount (or, for swap, enable). */
static bool role_knows_no_auto(role r) {
        switch (r) {
        case ROLE_ROOT:
        case ROLE_ROOT_VERITY:
        case ROLE_USR:
        case ROLE_USR_VERITY:
        case ROLE_HOME:
        case ROLE_SRV:
        case ROLE_VAR:
        case ROLE_TMP:
        case ROLE_XBOOTLDR:
        case ROLE_SWAP:
                return true;
        default:
                return false;
        }
}

static int entry_to_type(const entry *e, nri_part_type *ret) {
        nri_part_type t = {.name = e->name};
        int r;

        r = nri_uuid_parse(e->guid, &t.uuid);
        if (r < 0)
                return r;
        t.knows_read_only = role_knows_read_only(e->role);
        t.knows_growfs = role_knows_growfs(e->role);
        t.knows_no_auto = role_knows_no_auto(e->role);
        /* systemd-repart 252 turns GrowFileSystem= on for every type that
         * knows the bit, unless the partition is read-only. */
        t.growfs_by_default = t.knows_growfs;

        *ret = t;
        return 0;
}

static const entry *find_by_name(const char *s, nri_arch arch) {
        for (size_t i = 0; i < TABLE_SIZE; i++)
                if (strcmp(s, table[i].name) == 0)
                        return &table[i];

        for (int r = 0; r < _ROLE_PER_ARCH_MAX; r++) {
                if (strcmp(s, short_names[r]) != 0)
                        continue;
                for (size_t i = 0; i < TABLE_SIZE; i++)
                        if (table[i].arch == arch && table[i].role == (role)r)
                                return &table[i];
        }
        return NULL;
}

static const entry *find_by_uuid(const nri_uuid *u) {
        for (size_t i = 0; i < TABLE_SIZE; i++) {
                nri_uuid v;

                if (nri_uuid_parse(table[i].guid, &v) == 0 && nri_uuid_equal(u, &v))
                        return &table[i];
        }
        return NULL;
}

int nri_part_type_resolve(const char *s, nri_arch arch, nri_part_type *ret) {
        const entry *e;
        nri_uuid u;
        int r;

        if (!s || (unsigned)arch >= _NRI_ARCH_MAX)
                return -EINVAL;

        e = find_by_name(s, arch);
        if (e)
                return entry_to_type(e, ret);

        r = nri_uuid_parse(s, &u);
        if (r < 0)
                return r;

        /* A GUID the table knows behaves exactly as its name would: same
         * default label, same flags. */
        e = find_by_uuid(&u);
        if (e)
                return entry_to_type(e, ret);

        *ret = (nri_part_type){.uuid = u};
        return 0;
}

const char *nri_part_type_display(const nri_part_type *t, char buf[NRI_UUID_STRING_MAX]) {
        if (t->name)
                return t->name;
        nri_uuid_format(&t->uuid, buf);
        return buf;
}

#define NAMES_GENERIC "esp, xbootldr, swap, home, srv, var, tmp, user-home, linux-generic"
#define NAMES_SHORT "root, root-verity, root-verity-sig, usr, usr-verity, usr-verity-sig"
#define NAMES_ARCH(a)                                                                                       \
        "root-" a ", root-" a "-verity, root-" a "-verity-sig, usr-" a ", usr-" a "-verity, usr-" a         \
        "-verity-sig"

const char *nri_part_type_names(nri_arch arch) {
        /* The image's own architecture first: those are the names a user
         * most likely meant. */
        switch (arch) {
        case NRI_ARCH_ARM64:
                return NAMES_SHORT ", " NAMES_GENERIC ", " NAMES_ARCH("arm64") ", " NAMES_ARCH("x86-64");
        default:
                return NAMES_SHORT ", " NAMES_GENERIC ", " NAMES_ARCH("x86-64") ", " NAMES_ARCH("arm64");
        }
}
