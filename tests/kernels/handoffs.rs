//! A thread pool's tasks handed from request threads to workers: the kept span and its
//! adoption are the kernel's, so each kernel is checked.

use crate::{
    checks::assert_all_exported,
    support::{
        context::{PARENT, TRACE},
        pool,
        scenario::Workdir,
        vm::Case,
    },
    traced::{functions_config, traced},
};

/// pool.c: six requests on three threads, two tasks each, run by two workers after every
/// request returned; a sampled-out request, one that joined its caller's trace, and a task
/// handed in without `pool_submit`.
pub fn handoffs(dir: &Workdir) -> Case {
    let program = pool::program(dir.path());
    let mut config = functions_config(&program, pool::functions());
    config["probes"][0]["handoffs"] = pool::handoffs("parent");
    let config = dir.write_named("handoffs", &config);
    traced("handoffs", &config, &program)
        .command(format!("{} 00-{TRACE}-{PARENT}-01", program.display()))
        .case(|_, output, receiver| {
            output.assert_success();
            let spans = receiver.spans();
            pool::assert_tasks_under_requests(&spans);
            assert!(
                output.stderr.contains("made=16 taken=16 missing=1"),
                "{output}"
            );
            // 6 requests and the traced one; 15 tasks, each with its result.
            assert_all_exported(output, 37);
        })
}
