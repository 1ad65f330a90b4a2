// Structs behind pointers, for captures along chains of pointers: `handle(struct request *)`
// is called with a full request, one whose pointers are NULL, and NULL itself.
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

int main(void) {
    struct user alice = {42, "alice"};
    struct request full = {7, &alice, "/index.html", {10, 20, 30, 40}, KIND_PUT};
    struct request empty = {8, NULL, NULL, {0}, KIND_GET};
    int total = handle(&full) + handle(&empty) + handle(NULL);
    printf("fields %d %zu %zu %zu %zu %zu\n", total, offsetof(struct request, user),
           offsetof(struct request, path), offsetof(struct request, tags),
           offsetof(struct request, k), offsetof(struct user, name));
    return 0;
}
