// libjpeg(-turbo) in memory, with its fatal errors turned into return codes: libjpeg's default
// error handler exits the process, so a damaged file must longjmp back here instead.
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

struct dipviz_jpeg_error {
    struct jpeg_error_mgr manager;
    jmp_buf back;
    char message[JMSG_LENGTH_MAX];
};

static void dipviz_jpeg_error_exit(j_common_ptr info) {
    struct dipviz_jpeg_error *e = (struct dipviz_jpeg_error *)info->err;
    (*info->err->format_message)(info, e->message);
    longjmp(e->back, 1);
}

static void dipviz_jpeg_silent(j_common_ptr info, int level) { (void)info; (void)level; }

/// libjpeg's error manager with the fatal handler jumping back and warnings silenced.
static inline struct jpeg_error_mgr *dipviz_jpeg_errors(struct dipviz_jpeg_error *e) {
    struct jpeg_error_mgr *m = jpeg_std_error(&e->manager);
    m->error_exit = dipviz_jpeg_error_exit;
    m->emit_message = dipviz_jpeg_silent;
    return m;
}

/// Encodes 8-bit interleaved RGB at `quality` (1...100, 4:2:0 chroma as libjpeg's default).
/// Returns 0 and a malloc'ed buffer in *out (free with free()), or -1 and a message.
static inline int dipviz_jpeg_encode(const unsigned char *rgb, int width, int height, int quality,
                                     unsigned char **out, unsigned long *size, char *message, int capacity) {
    struct jpeg_compress_struct c;
    struct dipviz_jpeg_error e;
    *out = NULL; *size = 0;
    c.err = dipviz_jpeg_errors(&e);
    if (setjmp(e.back)) {
        snprintf(message, capacity, "%s", e.message);
        jpeg_destroy_compress(&c);
        if (*out) { free(*out); *out = NULL; }
        return -1;
    }
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, out, size);
    c.image_width = (JDIMENSION)width;
    c.image_height = (JDIMENSION)height;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)c.next_scanline * (size_t)width * 3);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return 0;
}

/// Decodes a JPEG to 8-bit interleaved RGB. Returns 0 with *pixels malloc'ed (free with free()),
/// or -1 and a message. Images over `max_pixels` are refused before decoding.
static inline int dipviz_jpeg_decode(const unsigned char *data, unsigned long length, long max_pixels,
                                     int *width, int *height, unsigned char **pixels, char *message, int capacity) {
    struct jpeg_decompress_struct d;
    struct dipviz_jpeg_error e;
    *pixels = NULL;
    d.err = dipviz_jpeg_errors(&e);
    if (setjmp(e.back)) {
        snprintf(message, capacity, "%s", e.message);
        jpeg_destroy_decompress(&d);
        if (*pixels) { free(*pixels); *pixels = NULL; }
        return -1;
    }
    jpeg_create_decompress(&d);
    jpeg_mem_src(&d, data, length);
    jpeg_read_header(&d, TRUE);
    d.out_color_space = JCS_RGB;
    if ((long)d.image_width * (long)d.image_height > max_pixels) {
        snprintf(message, capacity, "%ux%u pixels is more than %ld", d.image_width, d.image_height, max_pixels);
        jpeg_destroy_decompress(&d);
        return -1;
    }
    jpeg_start_decompress(&d);
    *width = (int)d.output_width; *height = (int)d.output_height;
    *pixels = (unsigned char *)malloc((size_t)d.output_width * d.output_height * 3);
    if (!*pixels) { snprintf(message, capacity, "out of memory"); jpeg_destroy_decompress(&d); return -1; }
    while (d.output_scanline < d.output_height) {
        JSAMPROW row = (JSAMPROW)(*pixels + (size_t)d.output_scanline * d.output_width * 3);
        jpeg_read_scanlines(&d, &row, 1);
    }
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    return 0;
}
