/* ext4-size.c: Minimize=guess for ext4 (ext4.h, nri_ext4_min_size()). */
#include "ext4-internal.h"

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
        need = st->data_blocks_4k + st->long_symlinks + dir_blocks;
        /* Extent tree leaves: a directory grows a block at a time wherever
         * the allocator is, so one of five blocks or more may need one; a
         * file's data is contiguous but for 128 MiB extents and the group
         * tables it crosses, and the runs of zeros it skips pay for their own
         * extents. */
        need += dir_blocks / 4 + st->data_blocks_4k / 340 + 1;
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
