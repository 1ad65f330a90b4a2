// Nested arrays (2-D, 3-D, a typedef'd row, rows of characters, a flexible member), unions,
// an anonymous struct and union, and nested structs: one layout for C and C++, whose member
// offsets as spanprobe resolves them are compared with the compiler's (tests/members.rs).
#include <stddef.h>

struct point {
    short x, y;
};

union value {
    long l;
    int i;
    char c[8];
    struct point p;
};

typedef int row[3];

struct grid {
    char tag;
    int y[2][2];
    long cube[2][3][4];
    struct point pts[3];
    struct point corners[2][2];
    union value v;
    struct {
        int a;
        union {
            int b;
            char bs[6];
        };
    } anon;
    char names[3][5];
    row rows[2];
    const char *label;
    int x[4];
    int tail[];
};

// Every element set to a value that says where it is: y[i][j] = 10 * i + j + 1, cube[i][j][k]
// = 100 * i + 10 * j + k, rows[i][j] = 10 * i + j, names "ab", "cd", "ef", tail[n] = n.
static void fill(struct grid *g, int tail) {
    g->tag = 'g';
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) g->y[i][j] = 10 * i + j + 1;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++) g->cube[i][j][k] = 100 * i + 10 * j + k;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) g->rows[i][j] = 10 * i + j;
    for (int i = 0; i < 3; i++) {
        g->names[i][0] = (char)('a' + 2 * i);
        g->names[i][1] = (char)('b' + 2 * i);
        g->names[i][2] = 0;
    }
    g->corners[1][1].y = 11;
    g->v.p.y = 7;
    g->anon.b = 5;
    g->label = "grid";
    for (int i = 0; i < 4; i++) g->x[i] = i;
    for (int n = 0; n < tail; n++) g->tail[n] = n;
}
