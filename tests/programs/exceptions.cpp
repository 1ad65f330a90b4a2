// An exception thrown in libstdc++ (std::stoi) and caught in the probed function: the
// `libstdcxx:throw` USDT probe fires inside its span.
#include <cstdio>
#include <string>
__attribute__((noinline)) int safe_parse(const char *text) {
    try {
        return std::stoi(text);
    } catch (const std::exception &) {
        return -1;
    }
}
int main() { std::printf("%d %d\n", safe_parse("42"), safe_parse("x")); }
