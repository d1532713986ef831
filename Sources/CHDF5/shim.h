// HDF5's C API from Debian's libhdf5-dev (serial flavour, HDF5 1.10+), used only to read Keras .h5
// weight files. Debian keeps these headers in /usr/include/hdf5/serial, outside the default search
// path, so they are included by that path (hdf5.h includes its siblings with quotes, which resolve
// next to it); the library is /usr/lib/<triple>/libhdf5_serial.so. No -I or pkg-config is needed.
#ifndef CHDF5_SHIM_H
#define CHDF5_SHIM_H

#if __has_include(<hdf5/serial/hdf5.h>)
#include <hdf5/serial/hdf5.h>
#else
#include <hdf5.h>
#endif
#include <stdio.h>
#include <string.h>

// Swift cannot import HDF5's identifier macros (they expand to a call to H5open() plus a global),
// so each one used is wrapped in a function.
static inline hid_t chdf5_default(void) { return H5P_DEFAULT; }
static inline hid_t chdf5_all(void) { return H5S_ALL; }
static inline hid_t chdf5_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t chdf5_c_s1(void) { return H5T_C_S1; }
static inline hid_t chdf5_file_access_class(void) { return H5P_FILE_ACCESS; }
static inline hid_t chdf5_dataset_access_class(void) { return H5P_DATASET_ACCESS; }
static inline hid_t chdf5_group_access_class(void) { return H5P_GROUP_ACCESS; }
static inline hid_t chdf5_link_access_class(void) { return H5P_LINK_ACCESS; }
static inline size_t chdf5_variable(void) { return H5T_VARIABLE; }
static inline unsigned chdf5_acc_rdonly(void) { return H5F_ACC_RDONLY; }

/// Turns off HDF5's automatic printing of error stacks to stderr for the calling thread (the
/// readers report errors themselves). Error settings are per thread in thread-safe builds.
static inline void chdf5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/// The type of the link `name` in `loc` (H5L_TYPE_HARD, _SOFT, _EXTERNAL...), or -1 if there is
/// none. Wrapped because H5Lget_info's struct changed between HDF5 1.10 and 1.12; `.type` did not.
static inline int chdf5_link_type(hid_t loc, const char *name, hid_t lapl) {
    H5L_info_t info;
    if (H5Lget_info(loc, name, &info, lapl) < 0) return -1;
    return (int)info.type;
}

/// The file address of the object header of `obj` (0 on success, -1 on failure). Wrapped because
/// HDF5 1.12 replaced addresses by VOL tokens in H5O_info_t.
static inline int chdf5_object_address(hid_t obj, haddr_t *addr) {
#if H5_VERSION_GE(1, 12, 0)
    H5O_info2_t info;
    if (H5Oget_info3(obj, &info, H5O_INFO_BASIC) < 0) return -1;
    return H5VLnative_token_to_addr(obj, info.token, addr) < 0 ? -1 : 0;
#else
    H5O_info_t info;
    if (H5Oget_info2(obj, &info, H5O_INFO_BASIC) < 0) return -1;
    *addr = info.addr;
    return 0;
#endif
}

typedef struct {
    char *buf;
    size_t size;
    size_t used;
    unsigned count;
} chdf5_error_text;

static herr_t chdf5_collect_error(unsigned n, const H5E_error2_t *err, void *data) {
    (void)n;
    chdf5_error_text *t = (chdf5_error_text *)data;
    if (err == NULL || err->desc == NULL || err->desc[0] == 0 || t->count >= 3 || t->used + 1 >= t->size) return 0;
    int w = snprintf(t->buf + t->used, t->size - t->used, "%s%s", t->count ? "; " : "", err->desc);
    if (w > 0) {
        t->used += (size_t)w;
        if (t->used >= t->size) t->used = t->size - 1;
    }
    t->count++;
    return 0;
}

/// Writes the innermost (most specific) descriptions of the calling thread's HDF5 error stack into
/// `buf` ("" when the stack is empty), then clears the stack.
static inline void chdf5_take_error(char *buf, size_t size) {
    if (buf == NULL || size == 0) return;
    buf[0] = 0;
    chdf5_error_text t = { buf, size, 0, 0 };
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, chdf5_collect_error, &t);
    H5Eclear2(H5E_DEFAULT);
}

#endif
