/* The trace writer's sites (see site_store.h). */
#include "site_store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "mw_error.h"

/* Places kept in the cache: a program that writes from more places than this at once
 * gets some of them a row more than once. */
#define SITE_SLOTS 1024
#define SITE_STRINGS 5

/* A place: its numbers and its strings (NULL where unknown). */
struct site_key {
    int64_t pid, thread_id;
    int32_t line;
    const char *str[SITE_STRINGS];   /* thread_name, file, function, native symbol, library */
};

struct site_slot {
    uint64_t hash;
    int64_t id;                  /* 0: empty */
    int64_t pid, thread_id;
    int32_t line;
    char *str[SITE_STRINGS];     /* copies, in owned */
    char *owned;
};

struct mw_site_store {
    sqlite3_stmt *insert;
    int64_t last_id;
    struct site_slot *recent;    /* the slot of the last change's site */
    struct site_slot slot[SITE_SLOTS];
};

int mw_site_store_create(sqlite3 *db, mw_site_store **out)
{
    *out = NULL;
    mw_site_store *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    if (sqlite3_prepare_v3(db,
                           "INSERT INTO sites (id, pid, thread_id, thread_name, file, line,"
                           " function, native_symbol, native_library)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           -1, SQLITE_PREPARE_PERSISTENT, &s->insert, NULL) != SQLITE_OK) {
        free(s);
        return MW_ETRACE;
    }
    *out = s;
    return 0;
}

void mw_site_store_release_db(mw_site_store *s)
{
    if (!s)
        return;
    sqlite3_finalize(s->insert);
    s->insert = NULL;
}

void mw_site_store_destroy(mw_site_store *s)
{
    if (!s)
        return;
    mw_site_store_release_db(s);
    for (size_t i = 0; i < SITE_SLOTS; i++)
        free(s->slot[i].owned);
    free(s);
}

void mw_site_store_forget(mw_site_store *s)
{
    for (size_t i = 0; i < SITE_SLOTS; i++)
        s->slot[i].id = 0;
}

static struct site_key key_of(const struct mw_rec_change *c)
{
    return (struct site_key){
        .pid = c->pid > 0 ? c->pid : 0,
        .thread_id = c->thread_id,
        .line = c->line > 0 ? c->line : 0,
        .str = {c->thread_name, c->file, c->function, c->native_symbol, c->native_library},
    };
}

static int key_unknown(const struct site_key *k)
{
    if (k->pid || k->thread_id || k->line)
        return 0;
    for (int i = 0; i < SITE_STRINGS; i++)
        if (k->str[i])
            return 0;
    return 1;
}

/* FNV-1a over the fields; a NULL string hashes apart from an empty one. */
static uint64_t key_hash(const struct site_key *k)
{
    uint64_t h = 0xcbf29ce484222325ull;
    const uint64_t prime = 0x100000001b3ull;
    uint64_t nums[3] = {(uint64_t)k->pid, (uint64_t)k->thread_id, (uint64_t)(uint32_t)k->line};
    for (int i = 0; i < 3; i++) {
        h ^= nums[i];
        h *= prime;
    }
    for (int i = 0; i < SITE_STRINGS; i++) {
        const unsigned char *p = (const unsigned char *)k->str[i];
        h ^= p ? 0x100u : 0x200u;
        h *= prime;
        for (; p && *p; p++) {
            h ^= *p;
            h *= prime;
        }
    }
    return h;
}

static int same_string(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* The slot holds place k (its hash not compared). */
static int slot_is(const struct site_slot *sl, const struct site_key *k)
{
    if (!sl->id || sl->pid != k->pid || sl->thread_id != k->thread_id || sl->line != k->line)
        return 0;
    for (int i = 0; i < SITE_STRINGS; i++)
        if (!same_string(sl->str[i], k->str[i]))
            return 0;
    return 1;
}

/* Puts the place in the slot, with copies of its strings. */
static int slot_take(struct site_slot *sl, uint64_t hash, const struct site_key *k, int64_t id)
{
    size_t total = 1;
    for (int i = 0; i < SITE_STRINGS; i++)
        total += k->str[i] ? strlen(k->str[i]) + 1 : 0;
    char *owned = malloc(total);
    if (!owned)
        return -ENOMEM;
    free(sl->owned);
    sl->owned = owned;
    for (int i = 0; i < SITE_STRINGS; i++) {
        if (!k->str[i]) {
            sl->str[i] = NULL;
            continue;
        }
        size_t n = strlen(k->str[i]) + 1;
        memcpy(owned, k->str[i], n);
        sl->str[i] = owned;
        owned += n;
    }
    sl->hash = hash;
    sl->id = id;
    sl->pid = k->pid;
    sl->thread_id = k->thread_id;
    sl->line = k->line;
    return 0;
}

static void bind_int_or_null(sqlite3_stmt *st, int i, int64_t v)
{
    if (v)
        sqlite3_bind_int64(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *t)
{
    if (t)
        sqlite3_bind_text(st, i, t, -1, SQLITE_STATIC);   /* reset right after the step */
    else
        sqlite3_bind_null(st, i);
}

static int insert_site(mw_site_store *s, int64_t id, const struct site_key *k)
{
    sqlite3_stmt *st = s->insert;
    sqlite3_bind_int64(st, 1, id);
    bind_int_or_null(st, 2, k->pid);
    bind_int_or_null(st, 3, k->thread_id);
    bind_text_or_null(st, 4, k->str[0]);
    bind_text_or_null(st, 5, k->str[1]);
    bind_int_or_null(st, 6, k->line);
    bind_text_or_null(st, 7, k->str[2]);
    bind_text_or_null(st, 8, k->str[3]);
    bind_text_or_null(st, 9, k->str[4]);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : MW_ETRACE;
}

int mw_site_store_id(mw_site_store *s, const struct mw_rec_change *c, int64_t *id)
{
    struct site_key k = key_of(c);
    *id = 0;
    if (key_unknown(&k))
        return 0;
    /* A run of changes from one place compares its strings once each, without hashing. */
    if (s->recent && slot_is(s->recent, &k)) {
        *id = s->recent->id;
        return 0;
    }
    uint64_t hash = key_hash(&k);
    struct site_slot *sl = &s->slot[hash % SITE_SLOTS];
    if (sl->hash == hash && slot_is(sl, &k)) {
        s->recent = sl;
        *id = sl->id;
        return 0;
    }
    int64_t next = s->last_id + 1;
    int rc = insert_site(s, next, &k);
    if (rc)
        return rc;
    s->last_id = next;
    *id = next;
    /* Without room for the copy the row stands; the place just is not cached. */
    if (slot_take(sl, hash, &k, next) != 0)
        sl->id = 0;
    s->recent = sl;
    return 0;
}
