/* fat-fill.c: a formatted FAT filled as mmd and mcopy fill it (fat-fill.h).
 *
 * What mtools does, and where: a name's slots (get_slots(),
 * lookupForInsert(): after the last entry used, a directory grown by
 * dir_grow() when they do not fit), its entries (write_vfat(), mk_entry(),
 * mk_entry_from_base() for "." and ".."), its clusters (mmd's makeit(),
 * mcopy's writeit(): get_next_free_cluster() from the last one given out),
 * the FATs and the FAT32 information sector (fat_write()).  The names a
 * directory holds are kept in a hash table, and so is, for a short name
 * that is taken, the one its numbered tails last led to: the next name
 * with the same short name goes on from there, where mtools would try
 * "~1", "~2", … again, scanning the whole directory each time. */
#include "fat-fill-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fat-short.h"
#include "log.h"
#include "nix-repart-image/macro.h"
#include "nix-repart-image/utf8.h"

static void *grow(void *items, size_t n, size_t *cap, size_t size) {
        size_t c;
        void *p;

        if (n < *cap)
                return items;
        c = *cap ? *cap * 2 : 16;
        p = realloc(items, c * size);
        if (!p)
                return NULL;
        *cap = c;
        return p;
}

/* "/a/b/name" for messages; malloc'ed or NULL. */
static char *path_of(const nri_fat_fill *f, size_t d, const char *name) {
        size_t len = name ? strlen(name) + 1 : 1, depth = 0, k = 0;
        const char **parts;
        char *out, *o;

        for (size_t i = d; i != 0; i = f->dirs[i].parent) {
                len += strlen(f->dirs[i].name) + 1;
                depth++;
        }
        parts = malloc((depth + 1) * sizeof(char *));
        out = malloc(len + 1);
        if (!parts || !out) {
                free(parts);
                free(out);
                return NULL;
        }
        for (size_t i = d; i != 0; i = f->dirs[i].parent)
                parts[k++] = f->dirs[i].name;
        o = out;
        while (k > 0)
                o += sprintf(o, "/%s", parts[--k]);
        if (name)
                o += sprintf(o, "/%s", name);
        if (o == out)
                strcpy(out, "/");
        free(parts);
        return out;
}

/* ---- the names each directory holds ----------------------------------- */

static uint64_t hash_key(size_t d, int kind, const char *text) {
        uint64_t h = UINT64_C(14695981039346656037) ^ d ^ ((uint64_t)kind << 56);

        for (const unsigned char *p = (const unsigned char *)text; *p; p++)
                h = (h ^ *p) * UINT64_C(1099511628211);
        return h;
}

static key *find_key(nri_fat_fill *f, size_t d, int kind, const char *text, uint64_t h) {
        size_t i = h & (f->cap_keys - 1);

        for (;; i = (i + 1) & (f->cap_keys - 1)) {
                key *k = &f->keys[i];

                if (!k->text ||
                    (k->hash == h && k->dir == d && k->kind == kind && strcmp(k->text, text) == 0))
                        return k;
        }
}

static key *lookup_key(nri_fat_fill *f, size_t d, int kind, const char *text) {
        key *k;

        if (!f->cap_keys)
                return NULL;
        k = find_key(f, d, kind, text, hash_key(d, kind, text));

        return k->text ? k : NULL;
}

/* Adds the key (taking `text`), or returns the one there. */
static int add_key(nri_fat_fill *f, size_t d, int kind, char *text, key **ret) {
        uint64_t h = hash_key(d, kind, text);
        key *k;

        if ((f->n_keys + 1) * 4 > f->cap_keys * 3) {
                size_t cap = f->cap_keys ? f->cap_keys * 2 : 1024;
                key *old = f->keys, *nk = calloc(cap, sizeof(key));

                if (!nk) {
                        free(text);
                        return -ENOMEM;
                }
                f->keys = nk;
                f->cap_keys = cap;
                for (size_t i = 0; old && i < cap / 2; i++)
                        if (old[i].text)
                                *find_key(f, old[i].dir, old[i].kind, old[i].text, old[i].hash) = old[i];
                free(old);
        }
        k = find_key(f, d, kind, text, h);
        if (k->text) {
                free(text);
        } else {
                *k = (key){.text = text, .hash = h, .dir = d, .kind = kind};
                f->n_keys++;
        }
        *ret = k;
        return 0;
}

/* ---- mtools' hash bitmap ---------------------------------------------- */

/* addBit() into each of the three bitmaps. */
static void set_bits(uint32_t (*bm)[128], uint32_t h) {
        const uint32_t hs[3] = {h, h << 12 | h >> 20, h << 24 | h >> 8};

        for (int i = 0; i < 3; i++)
                bm[i][(hs[i] / 32) % 128] |= 1u << (hs[i] % 32);
}

static bool has_bits(const uint32_t (*bm)[128], uint32_t h) {
        const uint32_t hs[3] = {h, h << 12 | h >> 20, h << 24 | h >> 8};

        for (int i = 0; i < 3; i++)
                if (!(bm[i][(hs[i] / 32) % 128] & 1u << (hs[i] % 32)))
                        return false;
        return true;
}

static int add_hash(nri_fat_fill *f, size_t d, uint32_t h) {
        dir *x = &f->dirs[d];
        uint32_t *p = grow(x->hashes, x->n_hashes, &x->cap_hashes, sizeof(uint32_t));

        if (!p)
                return -ENOMEM;
        x->hashes = p;
        x->hashes[x->n_hashes++] = h;
        if (x->bitmap)
                set_bits(x->bitmap, h);
        return 0;
}

/* isHashed(): whether the bitmap of directory d, as the program writing to
 * it has it, has the name of hash h. */
static int is_hashed(nri_fat_fill *f, size_t d, uint32_t h, bool *ret) {
        dir *x = &f->dirs[d];

        if (!x->bitmap) {
                x->bitmap = calloc(3, sizeof(*x->bitmap));
                if (!x->bitmap)
                        return -ENOMEM;
                for (size_t i = 0; i < x->n_hashes; i++)
                        set_bits(x->bitmap, x->hashes[i]);
        }
        *ret = has_bits((const uint32_t(*)[128])x->bitmap, h) ||
               (x->wrote_short_only && h == 0); /* "" hashes to 0 */
        return 0;
}

/* An mtools program starts writing to directory d; `scanned`: it read the
 * whole directory first (looking for a name in it). */
static void begin(nri_fat_fill *f, size_t d, bool scanned) {
        f->dirs[d].lookups = scanned ? 1 : 0;
        f->dirs[d].wrote_short_only = false;
}

int nri_fat_fill_begin(nri_fat_fill *f, size_t d, bool scanned) {
        begin(f, d, scanned);
        return 0;
}

/* ---- clusters --------------------------------------------------------- */

static uint32_t end_of_chain(const nri_fat_fill *f) {
        return f->g.fat_bits == 12 ? 0xfff : f->g.fat_bits == 16 ? 0xffff : 0x0fffffff;
}

/* `n` clusters in a row, from the next free one, chained. */
/* For `name` in directory d (NULL: d itself), for messages. */
static int allocate(nri_fat_fill *f, uint32_t n, size_t d, const char *name, uint32_t *ret) {
        uint64_t last = (uint64_t)f->g.clusters + 1; /* clusters are numbered from 2 */

        if ((uint64_t)f->next + n - 1 > last) {
                char *path = path_of(f, d, name);
                int r = fail(f, -ENOSPC,
                             "no room for %s: the content needs more than the %" PRIu32
                             " clusters of %" PRIu32 " bytes of the FAT%" PRIu32 " file system",
                             path   ? path
                             : name ? name
                                    : "a directory",
                             f->g.clusters, f->g.sector_size * f->g.sectors_per_cluster, f->g.fat_bits);

                free(path);
                return r;
        }
        while (f->cap_fat < (size_t)(f->next + n - 2)) {
                size_t cap = f->cap_fat ? f->cap_fat * 2 : 1024;
                uint32_t *p = realloc(f->fat, cap * sizeof(uint32_t));

                if (!p)
                        return -ENOMEM;
                memset(p + f->cap_fat, 0, (cap - f->cap_fat) * sizeof(uint32_t));
                f->fat = p;
                f->cap_fat = cap;
        }
        for (uint32_t i = 0; i < n; i++)
                f->fat[f->next + i - 2] = i + 1 < n ? f->next + i + 1 : end_of_chain(f);
        *ret = f->next;
        f->next += n;
        return 0;
}

/* dir_grow(): room for a cluster more of entries in directory d.  mtools
 * writes a directory through a buffer (bufferize(), 1 MiB), and the
 * cluster is given out only when the buffer is written: see flush_dir(). */
static int grow_dir(nri_fat_fill *f, size_t d, const char *name) {
        dir *x = &f->dirs[d];

        if (!x->n_chain) {
                char *path = path_of(f, d, name);
                int r = fail(f, -ENOSPC,
                             "no room for %s: the root directory of a FAT%" PRIu32 " holds %" PRIu32
                             " entries, and they are taken",
                             path ? path : name, f->g.fat_bits, x->capacity);

                free(path);
                return r;
        }
        x->capacity += f->per_cluster;
        x->pending++;
        return 0;
}

/* The clusters directory d grew by, given out now, after its last. */
static int flush_dir(nri_fat_fill *f, size_t d) {
        dir *x = &f->dirs[d];

        while (x->pending > 0) {
                uint32_t c, *p;
                int r;

                r = allocate(f, 1, d, NULL, &c);
                if (r < 0)
                        return r;
                p = grow(x->chain, x->n_chain, &x->cap_chain, sizeof(uint32_t));
                if (!p)
                        return -ENOMEM;
                x->chain = p;
                f->fat[x->chain[x->n_chain - 1] - 2] = c;
                x->chain[x->n_chain++] = c;
                x->pending--;
        }
        return 0;
}

int nri_fat_fill_flush(nri_fat_fill *f, size_t d) {
        return flush_dir(f, d);
}

/* ---- entries ---------------------------------------------------------- */

static uint8_t *slot_at(nri_fat_fill *f, size_t d, uint32_t s) {
        dir *x = &f->dirs[d];
        size_t need = (size_t)(s + 1 - x->base) * ENTRY;

        if (need > x->cap_slots) {
                size_t cap = x->cap_slots ? x->cap_slots * 2 : 8 * ENTRY;
                uint8_t *p;

                while (cap < need)
                        cap *= 2;
                p = realloc(x->slots, cap);
                if (!p)
                        return NULL;
                memset(p + x->cap_slots, 0, cap - x->cap_slots);
                x->slots = p;
                x->cap_slots = cap;
        }
        return x->slots + (size_t)(s - x->base) * ENTRY;
}

/* mk_entry(): a short entry with every timestamp the same. */
static void make_entry(const nri_fat_fill *f, uint8_t *e, const uint8_t name[11], uint8_t attr,
                       uint8_t case_flags, uint32_t cluster, uint32_t size) {
        memset(e, 0, ENTRY);
        /* dosnameToDirentry(): strncpy() of each part, so a NUL that
         * autorename_short() left in one ends it. */
        for (int i = 0; i < 8 && name[i]; i++)
                e[i] = name[i];
        for (int i = 0; i < 3 && name[8 + i]; i++)
                e[8 + i] = name[8 + i];
        e[11] = attr;
        e[12] = case_flags;
        memcpy(e + 14, f->time, 2); /* created */
        memcpy(e + 16, f->date, 2);
        memcpy(e + 18, f->date, 2); /* accessed */
        put16(e + 20, cluster >> 16);
        memcpy(e + 22, f->time, 2); /* modified */
        memcpy(e + 24, f->date, 2);
        put16(e + 26, cluster & 0xffff);
        put32(e + 28, size);
}

static uint8_t short_sum(const uint8_t name[11]) {
        uint8_t sum = 0;

        for (int i = 0; i < 11; i++)
                sum = (uint8_t)(((sum & 1) ? 0x80 : 0) + (sum >> 1) + name[i]);
        return sum;
}

/* write_vfat()'s long-name entries for `chars` (n of them), before slot
 * `end`: the last part first, 13 characters each, a NUL after the last
 * one and 0xffff to fill. */
static int long_entries(nri_fat_fill *f, size_t d, uint32_t start, const uint32_t *chars, size_t n,
                        const uint8_t name[11]) {
        static const uint8_t at[LFN_CHARS] = {1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30};
        uint32_t parts = (uint32_t)((n + LFN_CHARS - 1) / LFN_CHARS);

        for (uint32_t id = parts; id >= 1; id--) {
                uint8_t *e = slot_at(f, d, start + parts - id);
                bool ended = false;

                if (!e)
                        return -ENOMEM;
                memset(e, 0, ENTRY);
                e[0] = (uint8_t)(id == parts ? id | LFN_LAST : id);
                e[11] = ATTR_LFN;
                e[13] = short_sum(name);
                for (size_t k = 0; k < LFN_CHARS; k++) {
                        size_t i = (id - 1) * LFN_CHARS + k;
                        uint32_t c = ended ? 0xffff : i < n ? chars[i] & 0xffff : 0;

                        if (!ended && i >= n)
                                ended = true;
                        put16(e + at[k], c);
                }
        }
        return 0;
}

/* A name FAT cannot hold next to those of directory d: its long name (the
 * key `lkey`) is another's long or short name, case aside. */
static int check_long_name(nri_fat_fill *f, size_t d, const char *name, const char *lkey) {
        _cleanup_free_ char *path = NULL;
        key *taken = lookup_key(f, d, KEY_LONG, lkey);

        if (!taken)
                taken = lookup_key(f, d, KEY_SHORT, lkey);
        if (!taken)
                return 0;
        path = path_of(f, d, name);
        return fail(f, -EEXIST,
                    "'%s': FAT cannot hold this name next to '%s', whose %s name is the same but for case",
                    path ? path : name, f->names[taken->owner].name,
                    taken->kind == KEY_LONG ? "long" : "short");
}

/* Taken: where this short name led last time (every name tried on the way
 * there is still taken), in *memo (made the first time). */
static int memo_of(nri_fat_fill *f, size_t d, nri_fat_short *sn, key **memo, bool *ret_jumped) {
        char *m;
        int r;

        *ret_jumped = false;
        if (*memo)
                return 0;
        m = malloc(2 * 11 + 1);
        if (!m)
                return -ENOMEM;
        for (int i = 0; i < 11; i++)
                snprintf(m + 2 * i, 3, "%02x", sn->name[i]);
        r = add_key(f, d, KEY_MEMO, m, memo);
        if (r < 0)
                return r;
        if ((*memo)->memo[0] && memcmp((*memo)->memo, sn->name, 11) != 0) {
                memcpy(sn->name, (*memo)->memo, 11);
                *ret_jumped = true;
        }
        return 0;
}

/* The short name of `name` in directory d, as get_slots() and
 * lookupForInsert() settle on it: renamed while it is taken (or a device
 * name, or holds what short names cannot). */
static int choose_short_name(nri_fat_fill *f, size_t d, const char *name, uint32_t lhash,
                             nri_fat_short *sn) {
        _cleanup_free_ char *skey = NULL;
        key *memo = NULL;
        int r;

        nri_fat_short_name(f->names_cp, name, sn);
        for (unsigned tries = 0;; tries++) {
                bool jumped;

                if (tries > 1000000)
                        return fail(f, -EEXIST, "'%s': no short name left for it", name);
                if (nri_fat_short_refused(sn->name)) {
                        sn->flags = NRI_FAT_NEEDS_LONG;
                        nri_fat_autorename(sn->name, true);
                        continue;
                }
                /* lookupForInsert(): after the first look in a fresh
                 * cache, a name whose long name the bitmap does not have
                 * but whose short name it has is taken to be taken, by a
                 * name that needs a renamed short name anyway
                 * ("pessimistic"); the bitmap can be wrong there. */
                if (f->dirs[d].lookups++ > 0) {
                        bool lh = false, sh = false;

                        r = is_hashed(f, d, lhash, &lh);
                        if (r >= 0 && !lh)
                                r = is_hashed(f, d, nri_fat_hash_short(f->names_cp, sn->name), &sh);
                        if (r < 0)
                                return r;
                        if (!lh && !sh)
                                break; /* nothing there, as far as the bitmap knows */
                        if (!lh && sh && (sn->flags & NRI_FAT_NEEDS_LONG)) {
                                nri_fat_autorename(sn->name, true);
                                continue;
                        }
                }
                free(skey);
                skey = nri_fat_key_short(f->names_cp, sn->name);
                if (!skey)
                        return -ENOMEM;
                if (!lookup_key(f, d, KEY_SHORT, skey))
                        break;
                if (!(sn->flags & NRI_FAT_NEEDS_LONG)) {
                        _cleanup_free_ char *path = path_of(f, d, name);

                        return fail(f, -EEXIST, "'%s': its short name is taken in its directory",
                                    path ? path : name);
                }
                r = memo_of(f, d, sn, &memo, &jumped);
                if (r < 0)
                        return r;
                if (!jumped)
                        nri_fat_autorename(sn->name, true);
        }
        if (memo)
                memcpy(memo->memo, sn->name, 11);
        return 0;
}

/* The slots `name` takes after the last one used in directory d (the
 * directory grown until they fit), and its long-name entries written;
 * *ret_slot the slot of its short entry. */
static int take_slots(nri_fat_fill *f, size_t d, const char *name, const nri_fat_short *sn,
                      uint32_t *ret_slot) {
        _cleanup_free_ uint32_t *chars = NULL;
        uint32_t needed = 1, start;
        size_t n = 0;
        int r = 0;

        /* The long name as characters, when it gets entries. */
        if (sn->flags & NRI_FAT_NEEDS_LONG) {
                chars = malloc((strlen(name) + 1) * sizeof(uint32_t));
                if (!chars)
                        return -ENOMEM;
                for (const char *p = name; *p;) {
                        int l = nri_utf8_next(p, &chars[n]);

                        if (l < 0)
                                break;
                        n++;
                        p += l;
                }
                needed += (uint32_t)((n + LFN_CHARS - 1) / LFN_CHARS);
        }
        while (r >= 0 && f->dirs[d].capacity - f->dirs[d].used < needed)
                r = grow_dir(f, d, name);
        start = f->dirs[d].used;
        if (r >= 0 && needed > 1)
                r = long_entries(f, d, start, chars, n, sn->name);
        if (r >= 0 && !slot_at(f, d, start + needed - 1))
                r = -ENOMEM;
        if (r < 0)
                return r;
        f->dirs[d].used = start + needed;
        *ret_slot = start + needed - 1;
        return 0;
}

/* What mtools' cache then holds for the directory, and what later names
 * are checked against: the name, its keys and hashes.  Takes `lkey`. */
static int remember_name(nri_fat_fill *f, size_t d, const char *name, char *lkey, uint32_t lhash,
                         const nri_fat_short *sn) {
        _cleanup_free_ char *long_key = lkey;
        struct named *nm = grow(f->names, f->n_names, &f->cap_names, sizeof(*f->names));
        char *skey;
        key *k;
        int r = 0;

        if (!nm)
                return -ENOMEM;
        f->names = nm;
        nm[f->n_names] = (struct named){.dir = d, .name = strdup(name)};
        if (!nm[f->n_names].name)
                return -ENOMEM;
        f->n_names++;
        if (sn->flags & NRI_FAT_NEEDS_LONG) {
                r = add_key(f, d, KEY_LONG, TAKE_PTR(long_key), &k);
                if (r < 0)
                        return r;
                k->owner = f->n_names - 1;
                r = add_hash(f, d, lhash);
        } else
                f->dirs[d].wrote_short_only = true;
        if (r >= 0)
                r = add_hash(f, d, nri_fat_hash_short(f->names_cp, sn->name));
        if (r < 0)
                return r;
        skey = nri_fat_key_short(f->names_cp, sn->name);
        if (!skey)
                return -ENOMEM;
        r = add_key(f, d, KEY_SHORT, skey, &k);
        if (r < 0)
                return r;
        k->owner = f->n_names - 1;
        return 0;
}

/* The slots of `name` in directory d, as get_slots() finds them: its long
 * name must not be another's long or short name, its short name is renamed
 * while it is taken; the directory grows until they fit.  Writes the
 * long-name entries; *ret_slot is the slot of the short entry, *ret_short
 * its name and flags. */
static int place(nri_fat_fill *f, size_t d, const char *name, uint32_t *ret_slot, nri_fat_short *ret_short) {
        _Static_assert(sizeof(((key *)0)->memo) == sizeof(((nri_fat_short *)0)->name), "short name size");
        _cleanup_free_ char *lkey = nri_fat_key_long(f->names_cp, name);
        uint32_t lhash;
        int r;

        if (!lkey)
                return -ENOMEM;
        r = check_long_name(f, d, name, lkey);
        if (r < 0)
                return r;
        lhash = nri_fat_hash_long(f->names_cp, name);
        r = choose_short_name(f, d, name, lhash, ret_short);
        if (r >= 0)
                r = take_slots(f, d, name, ret_short, ret_slot);
        if (r >= 0)
                r = remember_name(f, d, name, TAKE_PTR(lkey), lhash, ret_short);
        return r;
}

/* ---- the API ---------------------------------------------------------- */

/* The Gregorian date of day `days` after 1970-01-01 (days >= 0). */
static void civil_from_days(int64_t days, int64_t *ret_year, int64_t *ret_month, int64_t *ret_day) {
        int64_t z = days + 719468, era = z / 146097, doe = z - era * 146097;
        int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;

        *ret_day = doy - (153 * mp + 2) / 5 + 1;
        *ret_month = mp < 10 ? mp + 3 : mp - 9;
        *ret_year = yoe + era * 400 + (*ret_month <= 2);
}

static int add_dir(nri_fat_fill *f, const char *name, size_t parent, size_t *ret) {
        dir *d = grow(f->dirs, f->n_dirs, &f->cap_dirs, sizeof(dir));

        if (!d)
                return -ENOMEM;
        f->dirs = d;
        d = &f->dirs[f->n_dirs];
        *d = (dir){.parent = parent};
        if (name) {
                d->name = strdup(name);
                if (!d->name)
                        return -ENOMEM;
        }
        *ret = f->n_dirs++;
        return 0;
}

int nri_fat_fill_new(const nri_vfat_geometry *g, const uint8_t *label, int64_t mtime, const char *what,
                     nri_fat_fill **ret) {
        nri_fat_fill *f = calloc(1, sizeof(*f));
        int64_t days = mtime / 86400, secs = mtime % 86400, year, month, day;
        size_t root;
        dir *r;
        int k;

        if (!f)
                return -ENOMEM;
        f->g = *g;
        f->what = what;
        f->per_cluster = g->sector_size * g->sectors_per_cluster / ENTRY;
        k = nri_fat_names_new(&f->names_cp);
        if (k < 0) {
                free(f);
                return k;
        }
        /* mk_entry() in UTC (vfat.c runs mtools with TZ=UTC0), the date
         * worked out here: gmtime() would read /etc/localtime first. */
        civil_from_days(days, &year, &month, &day);
        put16(f->time, (uint32_t)(secs / 3600 << 11 | secs / 60 % 60 << 5 | secs % 60 / 2));
        put16(f->date, (uint32_t)((year - 1980) << 9 | month << 5 | day));

        k = add_dir(f, NULL, 0, &root);
        if (k < 0) {
                nri_fat_fill_free(f);
                return k;
        }
        r = &f->dirs[root];
        r->base = r->used = label ? 1 : 0;
        if (label) {
                memcpy(f->label, label, 11);
                k = add_hash(f, root, nri_fat_hash_label(f->names_cp, label));
                if (k < 0) {
                        nri_fat_fill_free(f);
                        return k;
                }
                r = &f->dirs[root];
        }
        if (g->fat_bits == 32) {
                /* mformat's root is cluster 2, and its information sector
                 * says so: mtools gives out clusters from 3. */
                f->next = f->first_free = 3;
                f->cap_fat = 1024;
                f->fat = calloc(f->cap_fat, sizeof(uint32_t));
                r->chain = malloc(sizeof(uint32_t));
                if (!f->fat || !r->chain) {
                        nri_fat_fill_free(f);
                        return -ENOMEM;
                }
                f->fat[0] = end_of_chain(f);
                r->chain[0] = 2;
                r->n_chain = r->cap_chain = 1;
                r->capacity = f->per_cluster;
        } else {
                f->next = f->first_free = 2;
                r->capacity = g->root_dir_sectors * g->sector_size / ENTRY;
        }
        *ret = f;
        return 0;
}

void nri_fat_fill_free(nri_fat_fill *f) {
        if (!f)
                return;
        for (size_t i = 0; i < f->n_dirs; i++) {
                free(f->dirs[i].name);
                free(f->dirs[i].chain);
                free(f->dirs[i].slots);
                free(f->dirs[i].hashes);
                free(f->dirs[i].bitmap);
        }
        for (size_t i = 0; i < f->cap_keys; i++)
                free(f->keys[i].text);
        for (size_t i = 0; i < f->n_names; i++)
                free(f->names[i].name);
        free(f->names);
        free(f->keys);
        free(f->dirs);
        free(f->fat);
        nri_fat_names_free(f->names_cp);
        free(f);
}

int nri_fat_fill_mkdir(nri_fat_fill *f, size_t parent, const char *name, size_t *ret_index) {
        nri_fat_short sn;
        uint32_t slot, c, *chain;
        uint8_t *e;
        size_t d;
        int r;

        /* mmd reads the parent afresh for each directory it makes. */
        begin(f, parent, false);
        r = place(f, parent, name, &slot, &sn);
        if (r < 0)
                return r;
        /* makeit(): the directory's cluster, then its "." and "..". */
        r = allocate(f, 1, parent, name, &c);
        if (r < 0)
                return r;
        e = slot_at(f, parent, slot);
        if (!e)
                return -ENOMEM;
        make_entry(f, e, sn.name, ATTR_DIR, (uint8_t)(sn.flags & (NRI_FAT_CASE_BASE | NRI_FAT_CASE_EXT)), c,
                   0);

        r = add_dir(f, name, parent, &d);
        chain = r < 0 ? NULL : malloc(4 * sizeof(uint32_t));
        if (!chain)
                return -ENOMEM;
        f->dirs[d].first = c;
        f->dirs[d].chain = chain;
        f->dirs[d].chain[0] = c;
        f->dirs[d].n_chain = 1;
        f->dirs[d].cap_chain = 4;
        f->dirs[d].capacity = f->per_cluster;
        e = slot_at(f, d, 1);
        if (!e)
                return -ENOMEM;
        make_entry(f, f->dirs[d].slots, (const uint8_t *)".          ", ATTR_DIR, 0, c, 0);
        make_entry(f, f->dirs[d].slots + ENTRY, (const uint8_t *)"..         ", ATTR_DIR, 0,
                   f->dirs[parent].first, 0);
        f->dirs[d].used = 2;
        r = add_hash(f, d, nri_fat_hash_short(f->names_cp, (const uint8_t *)".          "));
        if (r >= 0)
                r = add_hash(f, d, nri_fat_hash_short(f->names_cp, (const uint8_t *)"..         "));
        if (r < 0)
                return r;
        *ret_index = d;
        /* mmd is done with the parent: its buffer is written. */
        return flush_dir(f, parent);
}

int nri_fat_fill_file(nri_fat_fill *f, size_t d, const char *name, uint64_t size, uint32_t *ret_cluster) {
        uint64_t cluster_bytes = (uint64_t)f->g.sector_size * f->g.sectors_per_cluster;
        nri_fat_short sn;
        uint32_t slot, c = 0;
        uint8_t *e;
        int r;

        if (size > UINT32_MAX)
                return fail(f, -EFBIG, "%s: %" PRIu64 " bytes; FAT files hold less than 4 GiB", name, size);
        r = place(f, d, name, &slot, &sn);
        if (r < 0)
                return r;
        if (size > 0) {
                r = allocate(f, (uint32_t)((size + cluster_bytes - 1) / cluster_bytes), d, name, &c);
                if (r < 0)
                        return r;
        }
        e = slot_at(f, d, slot);
        if (!e)
                return -ENOMEM;
        make_entry(f, e, sn.name, ATTR_ARCHIVE, (uint8_t)(sn.flags & (NRI_FAT_CASE_BASE | NRI_FAT_CASE_EXT)),
                   c, (uint32_t)size);
        *ret_cluster = c;
        return 0;
}

static uint64_t data_start(const nri_fat_fill *f) {
        const nri_vfat_geometry *g = &f->g;

        return ((uint64_t)g->reserved_sectors + (uint64_t)g->fats * g->fat_sectors + g->root_dir_sectors) *
               g->sector_size;
}

uint64_t nri_fat_fill_data_offset(const nri_fat_fill *f, uint32_t cluster) {
        return data_start(f) + (uint64_t)(cluster - 2) * f->g.sector_size * f->g.sectors_per_cluster;
}
