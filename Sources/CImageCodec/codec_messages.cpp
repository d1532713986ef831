// Messages that libjpeg and libpng would print to stderr, captured per thread instead.
//
// OpenCV creates its libjpeg and libpng decoders with the libraries' default message handlers, which
// print ("Corrupt JPEG data: premature end of data segment", "libpng error: ...") straight to stderr,
// between our progress lines and with no file name. OpenCV offers no hook for them, so this file
// defines the two library entry points OpenCV calls to set those handlers up (`jpeg_std_error`,
// `png_create_read_struct`). The executable's definitions take precedence over the shared libraries'
// for every caller (ELF symbol interposition); each forwards to the library's own function
// (dlsym RTLD_NEXT) and only swaps the print-to-stderr handlers for ones that keep the text in a
// thread-local buffer. cic_decode clears the buffer before a decode and reads it after, so each
// message lands in the failure reason (or warning) of the file that caused it.
#include "internal.hpp"

#include <dlfcn.h>

#include <csetjmp>
#include <cstdio>
#include <cstdlib>

#include <jpeglib.h>

namespace {

thread_local std::string captured;

void append(const char *library, const char *text) {
    if (captured.size() > 400) return;   // enough to say what went wrong
    if (!captured.empty()) captured += "; ";
    captured += library;
    captured += ": ";
    captured += text;
}

template <typename Fn> Fn next(const char *name) {
    void *symbol = dlsym(RTLD_NEXT, name);
    if (symbol == nullptr) {
        std::fprintf(stderr, "CImageCodec: %s not found in the loaded libraries (%s)\n", name, dlerror());
        std::abort();
    }
    return reinterpret_cast<Fn>(symbol);
}

extern "C" void captureJPEGMessage(j_common_ptr cinfo) {
    char buffer[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, buffer);
    append("libjpeg", buffer);
}

// libpng's callback types, declared here so the shim needs no png.h (OpenCV brings libpng itself).
using PNGMessage = void (*)(void *png, const char *message);
using PNGCreate = void *(*)(const char *version, void *errorData, PNGMessage onError, PNGMessage onWarning);
using PNGLongJump = void (*)(void *png, int value);

extern "C" void capturePNGWarning(void *, const char *message) { append("libpng warning", message); }

extern "C" [[noreturn]] void capturePNGError(void *png, const char *message) {
    append("libpng", message);
    static const PNGLongJump jump = next<PNGLongJump>("png_longjmp");
    jump(png, 1);   // what libpng's default handler does after printing; never returns
    std::abort();
}

}  // namespace

namespace cic {
void clearCodecMessages() { captured.clear(); }
std::string takeCodecMessages() {
    std::string text;
    text.swap(captured);
    return text;
}
}  // namespace cic

extern "C" struct jpeg_error_mgr *jpeg_std_error(struct jpeg_error_mgr *err) {
    static const auto real = next<struct jpeg_error_mgr *(*)(struct jpeg_error_mgr *)>("jpeg_std_error");
    struct jpeg_error_mgr *manager = real(err);
    manager->output_message = captureJPEGMessage;
    return manager;
}

extern "C" void *png_create_read_struct(const char *version, void *errorData, PNGMessage onError, PNGMessage onWarning) {
    static const auto real = next<PNGCreate>("png_create_read_struct");
    // Only the default (printing) handlers are replaced; a caller's own handlers stay.
    return real(version, errorData, onError ? onError : capturePNGError, onWarning ? onWarning : capturePNGWarning);
}
