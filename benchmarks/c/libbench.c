/* libbench.so: the function every per-call benchmark calls through the dynamic linker.
 *
 * foo() is deliberately a few volatile operations long: Frida's Interceptor has to overwrite the first bytes of
 * a function with a jump, and refuses functions shorter than that ("unable to intercept function").
 */
int foo(int x)
{
    volatile int v = x;
    v = v * 3 + 1;
    v = v ^ 0x5a5a;
    v = v - 7;
    return v;
}
