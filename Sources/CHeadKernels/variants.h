// Includes CHK_VARIANT_BODY (a quoted file name) once per instruction set, with CHK_FN(name) naming
// chk_<name>_generic, _avx2 and _avx512 and CHK_ATTR the matching target attribute; defines CHK_X86
// when the x86 variants exist. Included once by each of kernels.c and finetune.c.
#define CHK_FN(name) chk_##name##_generic
#define CHK_ATTR
#include CHK_VARIANT_BODY
#undef CHK_FN
#undef CHK_ATTR

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define CHK_X86 1
#define CHK_FN(name) chk_##name##_avx2
#define CHK_ATTR __attribute__((target("avx2,fma")))
#include CHK_VARIANT_BODY
#undef CHK_FN
#undef CHK_ATTR

#define CHK_FN(name) chk_##name##_avx512
#define CHK_ATTR __attribute__((target("avx512f,avx512vl,avx2,fma")))
#include CHK_VARIANT_BODY
#undef CHK_FN
#undef CHK_ATTR
#endif
