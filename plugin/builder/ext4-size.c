/* ext4-size.c: Minimize=guess and Minimize=best for ext4 (ext4.h,
 * nri_ext4_min_size(), nri_ext4_best_size()). */
#include "ext4-internal.h"
#include "nix-repart-image/macro.h"

#include <errno.h>
#include <et/com_err.h>
#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>
#include <ext2fs/ext3_extents.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* What a file system of `blocks` blocks has for content after mke2fs's
 * tables, journal, root directory, lost+found and resize inode. */
static int layout_room(blk64_t blocks, uint64_t *ret_blocks, uint64_t *ret_inodes) {
        struct ext2fs_journal_params jp;
        blk64_t overhead, taken;
        const char *call;
        ext2_filsys fs;
        errcode_t err;

        err = ext4_fs_create("/dev/null", 0, blocks, NULL, &fs, &overhead, &jp, &call);
        if (err == EXT2_ET_TOOSMALL) {
                *ret_blocks = *ret_inodes = 0;
                return 0;
        }
        if (err) {
                log_error("ext4: cannot lay out a file system of %" PRIu64 " blocks: %s failed: %s",
                          (uint64_t)blocks, call, error_message(err));
                return -EIO;
        }
        taken = overhead + jp.num_journal_blocks + jp.num_fc_blocks + 1 /* root */ + 4 /* lost+found */ +
                (ext2fs_has_feature_resize_inode(fs->super) ? 1 : 0);
        blocks = ext2fs_blocks_count(fs->super);
        *ret_blocks = blocks > taken ? blocks - taken : 0;
        *ret_inodes = fs->super->s_inodes_count - EXT2_FIRST_INODE(fs->super); /* lost+found is the first */
        ext2fs_free(fs);
        return 0;
}

int nri_ext4_min_size(const nri_plan_stats *st, uint64_t *ret) {
        uint64_t inodes = st->files + st->directories + st->symlinks;
        uint64_t entries = inodes + st->hardlinks, dirs = st->directories + 1 /* the root */;
        uint64_t dir_blocks, need, bytes, size;

        initialize_ext2_error_table();
        /* Directories: "." and ".." (24 bytes), entries of at most name + 11
         * bytes, appended block by block to blocks of 4096 - 12 (checksum)
         * bytes that an entry (263 bytes at most) may leave unused. */
        dir_blocks = dirs + (24 * dirs + st->name_bytes + 11 * entries) / (BLOCK - 12 - 264) + 1;
        need = st->blocks_4k + st->long_symlinks + dir_blocks;
        /* Extent tree leaves: a directory grows a block at a time wherever
         * the allocator is, so one of five blocks or more may need one; a
         * file's data is contiguous but for 128 MiB extents and the group
         * tables it crosses, and the runs of zeros it skips pay for their own
         * extents. */
        need += dir_blocks / 4 + st->blocks_4k / 340 + 1;
        if (need > UINT64_MAX / BLOCK / 2)
                return -EOVERFLOW;
        bytes = need * BLOCK + inodes * INODE_SIZE;
        size = (bytes + bytes / 2 + BLOCK - 1) / BLOCK * BLOCK;
        if (size < NRI_EXT4_MIN_SIZE)
                size = NRI_EXT4_MIN_SIZE;

        /* The journal and the tables grow with the size: grow until it fits. */
        for (int i = 0; i < 200; i++) {
                uint64_t room_blocks, room_inodes, grow = size / 32;
                int r;

                r = layout_room(size / BLOCK, &room_blocks, &room_inodes);
                if (r < 0)
                        return r;
                if (room_blocks >= need && room_inodes >= inodes) {
                        *ret = size;
                        return 0;
                }
                if (room_blocks < need && (need - room_blocks) * BLOCK * 9 / 8 > grow)
                        grow = (need - room_blocks) * BLOCK * 9 / 8;
                if (room_inodes < inodes && (inodes - room_inodes) * INODE_RATIO * 9 / 8 > grow)
                        grow = (inodes - room_inodes) * INODE_RATIO * 9 / 8;
                if (size > UINT64_MAX / 2 - grow)
                        return -EOVERFLOW;
                size = (size + grow + BLOCK - 1) / BLOCK * BLOCK;
        }
        return -EOVERFLOW;
}

/* The writer's dry run at `size` bytes into the scratch file. */
static int dry_run(const char *scratch, uint64_t size, const nri_plan *plan, const nri_ext4_options *o,
                   struct nri_ext4_free *ret_free) {
        nri_ext4_options d = *o;

        d.dry_run = true;
        d.progress = NULL;
        d.free = ret_free;
        if (truncate(scratch, 0) < 0 || truncate(scratch, (off_t)size) < 0) /* its pages freed */
                return log_error_errno(-errno, "%s: cannot size the scratch file %s: %m",
                                       o->what ? o->what : "ext4", scratch);
        return nri_ext4_write(scratch, 0, size, &d, plan);
}

/* A dry run at `size` whose running out of room is an answer, not an
 * error: 0, -ENOSPC (not logged), or another error, logged. */
static int trial(const char *scratch, uint64_t size, const nri_plan *plan, const nri_ext4_options *o) {
        bool was = nri_log_mute(true);
        int r = dry_run(scratch, size, plan, o, NULL);

        nri_log_mute(was);
        if (r < 0 && r != -ENOSPC)
                return log_error_errno(r, "%s: a trial at %" PRIu64 " bytes failed: %m",
                                       o->what ? o->what : "ext4", size);
        return r;
}

/* The least size, in 4096-byte steps from ext4's minimum up to `upto`,
 * whose layout has `blocks` and `inodes` of room. */
static int least_size_with_room(uint64_t blocks, uint64_t inodes, uint64_t upto, uint64_t *ret) {
        uint64_t lo = NRI_EXT4_MIN_SIZE / BLOCK, hi = upto / BLOCK;

        while (lo < hi) {
                uint64_t mid = lo + (hi - lo) / 2, rb, ri;
                int r = layout_room(mid, &rb, &ri);

                if (r < 0)
                        return r;
                if (rb >= blocks && ri >= inodes)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        *ret = lo * BLOCK;
        return 0;
}

int nri_ext4_best_size(const nri_plan *plan, const nri_plan_stats *st, const nri_ext4_options *o,
                       uint64_t *ret) {
        const char *what = o->what ? o->what : "ext4";
        _cleanup_close_ int fd = -1;
        char scratch[64];
        struct nri_ext4_free left;
        uint64_t guess, room_blocks, room_inodes, need_blocks, need_inodes, size, fits, short_of = 0;
        int r;

        r = nri_ext4_min_size(st, &guess);
        if (r < 0)
                return log_error_errno(r, "%s: cannot work out the size of its content: %m", what);
        /* In memory: a dry run writes only metadata (tens of MiB for 50 000
         * files), and on disk ext4 flushes a file truncated to nothing
         * (auto_da_alloc), which made each trial wait for the disk. */
        fd = memfd_create("nri-ext4-best", MFD_CLOEXEC);
        if (fd < 0)
                return log_error_errno(-errno, "%s: cannot make a scratch file in memory: %m", what);
        snprintf(scratch, sizeof(scratch), "/proc/self/fd/%d", fd);

        /* What the content takes, from a file system the guess surely fits. */
        r = dry_run(scratch, guess, plan, o, &left);
        if (r < 0)
                return r;
        r = layout_room(guess / BLOCK, &room_blocks, &room_inodes);
        if (r < 0)
                return r;
        need_blocks = room_blocks > left.blocks ? room_blocks - left.blocks : 0;
        need_inodes = room_inodes > left.inodes ? room_inodes - left.inodes : 0;

        /* The least layout with that room; when the content does not fit
         * it after all (a smaller file system has its group boundaries
         * elsewhere, which may split a file's extents differently), larger
         * until it does, then the least between the two by bisection. */
        r = least_size_with_room(need_blocks, need_inodes, guess, &size);
        if (r < 0)
                return r;
        fits = guess;
        for (uint64_t step = 16 * BLOCK; size < fits; step *= 2) {
                r = trial(scratch, size, plan, o);
                if (r < 0 && r != -ENOSPC)
                        return r;
                if (r == 0) {
                        fits = size;
                        break;
                }
                short_of = size;
                size += step;
        }
        while (short_of > 0 && fits - short_of > BLOCK) {
                uint64_t mid = short_of + (fits - short_of) / 2 / BLOCK * BLOCK;

                r = trial(scratch, mid, plan, o);
                if (r < 0 && r != -ENOSPC)
                        return r;
                if (r == 0)
                        fits = mid;
                else
                        short_of = mid;
        }
        *ret = fits;
        return 0;
}
