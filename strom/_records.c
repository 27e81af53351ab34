/* The wire form of a record batch for the common record shapes, in C (issue 12).
 *
 * A remote channel sends a batch of records as one frame (DESIGN.md §5). Pickle writes and
 * reads a record in ~40 and ~55 ns at word count's (str, int) pairs, and the keyed task that
 * receives the batch then calls its key selector on every record once more (~35 ns), though
 * the sending partitioner had the keys. Here a batch whose every record is built from exact
 * None, bool, int (64-bit), float, str, bytes and tuples of those is written and read in one
 * C loop each, with its keys: a key that is the record itself or one of its tuple's fields
 * (``key_by(lambda p: p[0])``) costs one byte and arrives as that very field, any other key
 * is written as a record is. Anything else (subclasses, lists, dicts, Rows, a user's class,
 * an int beyond 64 bits, a str with a lone surrogate) makes ``encode_records`` return None
 * and the caller pickles the batch instead, so every record arrives as the type it left as.
 *
 * The layout (little-endian; "n" is an unsigned LEB128 varint):
 *
 *     flags:1  count:n  value*count  [timestamp*count if flags&1]  [keyref*count if flags&2]
 *     value      := 0x00 None | 0x01 False | 0x02 True | 0x03 zigzag(int64):n
 *                 | 0x04 float:8 | 0x05 ascii str len:n bytes | 0x06 utf-8 str len:n bytes
 *                 | 0x07 bytes len:n bytes | 0x08 tuple len:n value*len
 *     timestamp  := a value (an int or None)
 *     keyref     := 0x00 value (the key itself) | 0x01 (the record) | 0x02+i (field i)
 *
 * ``decode_records`` checks every length against the bytes left and every str against its
 * encoding, so a malformed frame raises ValueError and never reads out of bounds; a frame from
 * a peer builds nothing but these plain types, whatever it holds.
 *
 * Optional like strom/_speedups.c: without it, record batches are pickled, and frames in this
 * layout are read by taskmanager/network/elements.py's Python reader.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum {
    T_NONE = 0,
    T_FALSE = 1,
    T_TRUE = 2,
    T_INT = 3,
    T_FLOAT = 4,
    T_ASCII = 5,
    T_UTF8 = 6,
    T_BYTES = 7,
    T_TUPLE = 8,
};

enum { F_STAMPS = 1, F_KEYS = 2 };
enum { K_VALUE = 0, K_RECORD = 1, K_FIELD = 2 };

/* Tuples nested deeper than this are pickled instead (and rejected when read). */
#define MAX_DEPTH 16
/* The highest field index a key reference names (0x02 + index fits in a byte). */
#define MAX_FIELD 253

/* ------------------------------------------------------------------ writing */

typedef struct {
    char *data;
    Py_ssize_t size;
    Py_ssize_t capacity;
} Buffer;

static int
reserve(Buffer *buffer, Py_ssize_t more)
{
    if (buffer->size + more <= buffer->capacity) {
        return 0;
    }
    Py_ssize_t capacity = buffer->capacity * 2;
    if (capacity < buffer->size + more) {
        capacity = buffer->size + more;
    }
    char *data = PyMem_Realloc(buffer->data, (size_t)capacity);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    buffer->data = data;
    buffer->capacity = capacity;
    return 0;
}

static int
put_byte(Buffer *buffer, unsigned char byte)
{
    if (reserve(buffer, 1) < 0) {
        return -1;
    }
    buffer->data[buffer->size++] = (char)byte;
    return 0;
}

static int
put_varint(Buffer *buffer, uint64_t value)
{
    if (reserve(buffer, 10) < 0) {
        return -1;
    }
    unsigned char *out = (unsigned char *)buffer->data + buffer->size;
    Py_ssize_t written = 0;
    while (value >= 0x80) {
        out[written++] = (unsigned char)(value | 0x80);
        value >>= 7;
    }
    out[written++] = (unsigned char)value;
    buffer->size += written;
    return 0;
}

static int
put_bytes(Buffer *buffer, unsigned char tag, const char *data, Py_ssize_t size)
{
    if (put_byte(buffer, tag) < 0 || put_varint(buffer, (uint64_t)size) < 0 ||
        reserve(buffer, size) < 0) {
        return -1;
    }
    memcpy(buffer->data + buffer->size, data, (size_t)size);
    buffer->size += size;
    return 0;
}

/* Write ``value``: 1 when written, 0 when its type is not one this layout holds (nothing is
 * set then; the caller pickles the batch), -1 with an exception set on a real failure. */
static int
put_value(Buffer *buffer, PyObject *value, int depth)
{
    if (value == Py_None) {
        return put_byte(buffer, T_NONE) < 0 ? -1 : 1;
    }
    if (value == Py_False || value == Py_True) {
        return put_byte(buffer, value == Py_True ? T_TRUE : T_FALSE) < 0 ? -1 : 1;
    }
    if (PyUnicode_CheckExact(value)) {
        if (PyUnicode_IS_ASCII(value)) {
            return put_bytes(buffer, T_ASCII, (const char *)PyUnicode_DATA(value),
                             PyUnicode_GET_LENGTH(value)) < 0
                       ? -1
                       : 1;
        }
        Py_ssize_t size;
        const char *data = PyUnicode_AsUTF8AndSize(value, &size);
        if (data == NULL) { /* a lone surrogate: pickle keeps it */
            PyErr_Clear();
            return 0;
        }
        return put_bytes(buffer, T_UTF8, data, size) < 0 ? -1 : 1;
    }
    if (PyLong_CheckExact(value)) {
        int overflow;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow) {
            return 0;
        }
        if (number == -1 && PyErr_Occurred()) {
            return -1;
        }
        uint64_t zigzag = ((uint64_t)number << 1) ^ (uint64_t)(number >> 63);
        return put_byte(buffer, T_INT) < 0 || put_varint(buffer, zigzag) < 0 ? -1 : 1;
    }
    if (PyFloat_CheckExact(value)) {
        double number = PyFloat_AS_DOUBLE(value);
        if (put_byte(buffer, T_FLOAT) < 0 || reserve(buffer, 8) < 0) {
            return -1;
        }
        if (PyFloat_Pack8(number, buffer->data + buffer->size, 1) < 0) {
            return -1;
        }
        buffer->size += 8;
        return 1;
    }
    if (PyBytes_CheckExact(value)) {
        return put_bytes(buffer, T_BYTES, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value)) < 0
                   ? -1
                   : 1;
    }
    if (PyTuple_CheckExact(value)) {
        if (depth >= MAX_DEPTH) {
            return 0;
        }
        Py_ssize_t size = PyTuple_GET_SIZE(value);
        if (put_byte(buffer, T_TUPLE) < 0 || put_varint(buffer, (uint64_t)size) < 0) {
            return -1;
        }
        for (Py_ssize_t i = 0; i < size; i++) {
            int done = put_value(buffer, PyTuple_GET_ITEM(value, i), depth + 1);
            if (done <= 0) {
                return done;
            }
        }
        return 1;
    }
    return 0;
}

/* Write the reference to ``key`` of ``record``: itself, one of its fields, or the key. */
static int
put_key(Buffer *buffer, PyObject *key, PyObject *record)
{
    if (key == record) {
        return put_byte(buffer, K_RECORD) < 0 ? -1 : 1;
    }
    if (PyTuple_CheckExact(record)) {
        Py_ssize_t size = PyTuple_GET_SIZE(record);
        if (size > MAX_FIELD + 1) {
            size = MAX_FIELD + 1;
        }
        for (Py_ssize_t i = 0; i < size; i++) {
            if (PyTuple_GET_ITEM(record, i) == key) {
                return put_byte(buffer, (unsigned char)(K_FIELD + i)) < 0 ? -1 : 1;
            }
        }
    }
    if (put_byte(buffer, K_VALUE) < 0) {
        return -1;
    }
    return put_value(buffer, key, 0);
}

PyDoc_STRVAR(encode_records_doc,
"encode_records(prefix, values, timestamps, keys)\n"
"--\n\n"
"The bytes ``prefix`` followed by the batch ``values`` (a list) with its ``timestamps`` and\n"
"``keys`` (lists parallel to it, or None) in this module's layout; None when a record, a\n"
"timestamp or a key is of a type the layout does not hold.");

static PyObject *
encode_records(PyObject *module, PyObject *args)
{
    (void)module;
    const char *prefix;
    Py_ssize_t prefix_size;
    PyObject *values, *timestamps, *keys;
    if (!PyArg_ParseTuple(args, "y#O!OO:encode_records", &prefix, &prefix_size, &PyList_Type,
                          &values, &timestamps, &keys)) {
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(values);
    if ((timestamps != Py_None &&
         (!PyList_CheckExact(timestamps) || PyList_GET_SIZE(timestamps) != count)) ||
        (keys != Py_None && (!PyList_CheckExact(keys) || PyList_GET_SIZE(keys) != count))) {
        PyErr_SetString(PyExc_ValueError, "timestamps and keys must be lists parallel to values");
        return NULL;
    }
    Buffer buffer = {NULL, 0, 0};
    int done = -1;
    /* Nothing below calls back into Python, so the lists keep their sizes and items. */
    if (reserve(&buffer, prefix_size + 16 + count * 12) < 0) {
        goto end;
    }
    memcpy(buffer.data, prefix, (size_t)prefix_size);
    buffer.size = prefix_size;
    unsigned char flags = (timestamps != Py_None ? F_STAMPS : 0) | (keys != Py_None ? F_KEYS : 0);
    if (put_byte(&buffer, flags) < 0 || put_varint(&buffer, (uint64_t)count) < 0) {
        goto end;
    }
    done = 1;
    for (Py_ssize_t i = 0; i < count && done == 1; i++) {
        done = put_value(&buffer, PyList_GET_ITEM(values, i), 0);
    }
    if (timestamps != Py_None) {
        for (Py_ssize_t i = 0; i < count && done == 1; i++) {
            done = put_value(&buffer, PyList_GET_ITEM(timestamps, i), 0);
        }
    }
    if (keys != Py_None) {
        for (Py_ssize_t i = 0; i < count && done == 1; i++) {
            done = put_key(&buffer, PyList_GET_ITEM(keys, i), PyList_GET_ITEM(values, i));
        }
    }
end:;
    PyObject *result = NULL;
    if (done == 1) {
        result = PyBytes_FromStringAndSize(buffer.data, buffer.size);
    }
    else if (done == 0) {
        result = Py_NewRef(Py_None);
    }
    PyMem_Free(buffer.data);
    return result;
}

/* ------------------------------------------------------------------ reading */

typedef struct {
    const unsigned char *at;
    const unsigned char *end;
} Reader;

static PyObject *
malformed(const char *what)
{
    PyErr_Format(PyExc_ValueError, "malformed record batch: %s", what);
    return NULL;
}

static int
get_varint(Reader *reader, uint64_t *value)
{
    uint64_t result = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (reader->at >= reader->end) {
            malformed("a number runs past the end");
            return -1;
        }
        unsigned char byte = *reader->at++;
        if (shift == 63 && byte > 1) {
            break;
        }
        result |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80)) {
            *value = result;
            return 0;
        }
    }
    malformed("a number is longer than 64 bits");
    return -1;
}

/* A length that the bytes left can hold, ``unit`` bytes an item at least. */
static int
get_length(Reader *reader, Py_ssize_t unit, Py_ssize_t *length)
{
    uint64_t value;
    if (get_varint(reader, &value) < 0) {
        return -1;
    }
    if (value > (uint64_t)(reader->end - reader->at) / (uint64_t)unit) {
        malformed("a length runs past the end");
        return -1;
    }
    *length = (Py_ssize_t)value;
    return 0;
}

/* Short ASCII strs read lately, by their bytes: a frame's words are mostly words read before
 * (a vocabulary), and handing out the same immutable str again skips its allocation, and its
 * hash is then computed once, not at every dict lookup downstream. A slot is replaced by the
 * next str that hashes to it. Touched only with the GIL held and without calling anything
 * that runs Python code between reading a slot and taking its reference. */
#define STR_CACHE_SLOTS 4096
#define STR_CACHE_MAX 32
static PyObject *str_cache[STR_CACHE_SLOTS];

static PyObject *
ascii_str(const unsigned char *data, Py_ssize_t size)
{
    PyObject **slot = NULL;
    if (size <= STR_CACHE_MAX) {
        uint32_t hash = 2166136261u; /* FNV-1a */
        for (Py_ssize_t i = 0; i < size; i++) {
            hash = (hash ^ data[i]) * 16777619u;
        }
        slot = &str_cache[(hash ^ (hash >> 16)) & (STR_CACHE_SLOTS - 1)];
        PyObject *cached = *slot;
        if (cached != NULL && PyUnicode_GET_LENGTH(cached) == size &&
            memcmp(PyUnicode_DATA(cached), data, (size_t)size) == 0) {
            return Py_NewRef(cached);
        }
    }
    PyObject *text = PyUnicode_New(size, 127);
    if (text == NULL) {
        return NULL;
    }
    memcpy(PyUnicode_DATA(text), data, (size_t)size);
    if (slot != NULL) {
        PyObject *old = *slot;
        *slot = Py_NewRef(text);
        Py_XDECREF(old); /* a str: freeing it runs no Python code */
    }
    return text;
}

static PyObject *
get_value(Reader *reader, int depth)
{
    if (reader->at >= reader->end) {
        return malformed("a value runs past the end");
    }
    unsigned char tag = *reader->at++;
    switch (tag) {
    case T_NONE:
        return Py_NewRef(Py_None);
    case T_FALSE:
        return Py_NewRef(Py_False);
    case T_TRUE:
        return Py_NewRef(Py_True);
    case T_INT: {
        uint64_t zigzag;
        if (get_varint(reader, &zigzag) < 0) {
            return NULL;
        }
        return PyLong_FromLongLong((long long)((zigzag >> 1) ^ (~(zigzag & 1) + 1)));
    }
    case T_FLOAT: {
        if (reader->end - reader->at < 8) {
            return malformed("a float runs past the end");
        }
        double number = PyFloat_Unpack8((const char *)reader->at, 1);
        if (number == -1.0 && PyErr_Occurred()) {
            return NULL;
        }
        reader->at += 8;
        return PyFloat_FromDouble(number);
    }
    case T_ASCII: {
        Py_ssize_t size;
        if (get_length(reader, 1, &size) < 0) {
            return NULL;
        }
        const unsigned char *data = reader->at;
        unsigned char high = 0;
        for (Py_ssize_t i = 0; i < size; i++) {
            high |= data[i];
        }
        if (high & 0x80) {
            return malformed("an ASCII str holds a byte above 127");
        }
        reader->at += size;
        return ascii_str(data, size);
    }
    case T_UTF8: {
        Py_ssize_t size;
        if (get_length(reader, 1, &size) < 0) {
            return NULL;
        }
        PyObject *text = PyUnicode_DecodeUTF8((const char *)reader->at, size, "strict");
        if (text == NULL) {
            PyErr_Clear();
            return malformed("a str is not UTF-8");
        }
        reader->at += size;
        return text;
    }
    case T_BYTES: {
        Py_ssize_t size;
        if (get_length(reader, 1, &size) < 0) {
            return NULL;
        }
        PyObject *data = PyBytes_FromStringAndSize((const char *)reader->at, size);
        reader->at += size;
        return data;
    }
    case T_TUPLE: {
        if (depth >= MAX_DEPTH) {
            return malformed("tuples nested too deep");
        }
        Py_ssize_t size;
        if (get_length(reader, 1, &size) < 0) {
            return NULL;
        }
        PyObject *tuple = PyTuple_New(size);
        if (tuple == NULL) {
            return NULL;
        }
        for (Py_ssize_t i = 0; i < size; i++) {
            PyObject *item = get_value(reader, depth + 1);
            if (item == NULL) {
                Py_DECREF(tuple);
                return NULL;
            }
            PyTuple_SET_ITEM(tuple, i, item);
        }
        return tuple;
    }
    default:
        PyErr_Format(PyExc_ValueError, "malformed record batch: unknown value tag %d", tag);
        return NULL;
    }
}

static PyObject *
get_list(Reader *reader, Py_ssize_t count)
{
    PyObject *list = PyList_New(count);
    if (list == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *value = get_value(reader, 0);
        if (value == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, value);
    }
    return list;
}

static PyObject *
get_keys(Reader *reader, PyObject *values, Py_ssize_t count)
{
    PyObject *keys = PyList_New(count);
    if (keys == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *key;
        if (reader->at >= reader->end) {
            Py_DECREF(keys);
            return malformed("a key runs past the end");
        }
        unsigned char ref = *reader->at++;
        PyObject *record = PyList_GET_ITEM(values, i);
        if (ref == K_VALUE) {
            key = get_value(reader, 0);
        }
        else if (ref == K_RECORD) {
            key = Py_NewRef(record);
        }
        else if (PyTuple_CheckExact(record) && ref - K_FIELD < PyTuple_GET_SIZE(record)) {
            key = Py_NewRef(PyTuple_GET_ITEM(record, ref - K_FIELD));
        }
        else {
            key = malformed("a key names a field its record does not have");
        }
        if (key == NULL) {
            Py_DECREF(keys);
            return NULL;
        }
        PyList_SET_ITEM(keys, i, key);
    }
    return keys;
}

PyDoc_STRVAR(decode_records_doc,
"decode_records(data, offset)\n"
"--\n\n"
"The batch that ``data`` (bytes-like) holds from ``offset`` on, in this module's layout:\n"
"``(values, timestamps, keys)``, each a list or None. Raises ValueError when it is malformed.");

static PyObject *
decode_records(PyObject *module, PyObject *args)
{
    (void)module;
    Py_buffer view;
    Py_ssize_t offset;
    if (!PyArg_ParseTuple(args, "y*n:decode_records", &view, &offset)) {
        return NULL;
    }
    PyObject *values = NULL, *timestamps = NULL, *keys = NULL, *result = NULL;
    if (offset < 0 || offset >= view.len) {
        malformed("no batch at that offset");
        goto end;
    }
    Reader reader = {(const unsigned char *)view.buf + offset,
                     (const unsigned char *)view.buf + view.len};
    unsigned char flags = *reader.at++;
    if (flags & ~(F_STAMPS | F_KEYS)) {
        malformed("unknown flags");
        goto end;
    }
    Py_ssize_t count;
    if (get_length(&reader, 1, &count) < 0 || (values = get_list(&reader, count)) == NULL) {
        goto end;
    }
    if (flags & F_STAMPS) {
        if ((timestamps = get_list(&reader, count)) == NULL) {
            goto end;
        }
    }
    if (flags & F_KEYS) {
        if ((keys = get_keys(&reader, values, count)) == NULL) {
            goto end;
        }
    }
    if (reader.at != reader.end) {
        malformed("trailing bytes after the batch");
        goto end;
    }
    result = PyTuple_Pack(3, values, timestamps ? timestamps : Py_None, keys ? keys : Py_None);
end:
    Py_XDECREF(values);
    Py_XDECREF(timestamps);
    Py_XDECREF(keys);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef records_methods[] = {
    {"encode_records", encode_records, METH_VARARGS, encode_records_doc},
    {"decode_records", decode_records, METH_VARARGS, decode_records_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef records_module = {
    PyModuleDef_HEAD_INIT,
    "strom._records",
    "Record batches on the wire for the common record shapes (optional): strom/_records.c.",
    -1,
    records_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__records(void)
{
    return PyModule_Create(&records_module);
}
