// Structs behind pointers, for captures along chains of pointers: `handle(struct request *)`
// is called with a full request, one whose pointers are NULL, and NULL itself; `lookup`
// returns a pointer to a struct (or NULL), `make_reply` a struct in memory; `walk` takes a
// linked list and bitfields, for the paths that are refused.
#include <stddef.h>
#include <stdio.h>

enum kind { KIND_GET = 1, KIND_PUT = 2 };

struct user {
    long id;
    char name[16];
};

struct request {
    int rid;
    struct user *user;
    const char *path;
    int tags[4];
    enum kind k;
};

__attribute__((noinline)) int handle(struct request *r) {
    __asm__ volatile("" ::: "memory");
    return r ? r->rid : -1;
}

static struct user alice = {42, "alice"};

__attribute__((noinline)) struct user *lookup(long id) {
    __asm__ volatile("" ::: "memory");
    return id == alice.id ? &alice : NULL;
}

// 24 bytes: returned in memory, through a pointer the caller passes (and gets back in RAX).
struct reply {
    long code;
    long bytes;
    enum kind k;
};

__attribute__((noinline)) struct reply make_reply(long code) {
    __asm__ volatile("" ::: "memory");
    struct reply reply = {code, code * 10, KIND_PUT};
    return reply;
}

struct node {
    struct node *next;
    int value;
};

struct flags {
    unsigned ready : 1;
    unsigned mode : 3;
};

__attribute__((noinline)) int walk(struct node *n, struct flags *f) {
    __asm__ volatile("" ::: "memory");
    return n->value + (int)f->mode;
}

int main(void) {
    struct request full = {7, &alice, "/index.html", {10, 20, 30, 40}, KIND_PUT};
    struct request empty = {8, NULL, NULL, {0}, KIND_GET};
    int total = handle(&full) + handle(&empty) + handle(NULL);
    struct user *found = lookup(42);
    struct user *missing = lookup(7);
    struct reply reply = make_reply(200);
    struct node last = {NULL, 3}, first = {&last, 1};
    struct flags flags = {1, 2};
    total += (found ? 1 : 0) + (missing ? 1 : 0) + (int)reply.bytes + walk(&first, &flags);
    printf("fields %d %zu %zu %zu %zu %zu\n", total, offsetof(struct request, user),
           offsetof(struct request, path), offsetof(struct request, tags),
           offsetof(struct request, k), offsetof(struct user, name));
    return 0;
}
