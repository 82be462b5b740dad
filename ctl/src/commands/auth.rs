//! `auth`, `user` and `role`: turning authentication on and off, users and roles, printed
//! as etcdctl prints them (simple and json; table and fields are refused, as etcdctl does).

use std::io::{BufRead, IsTerminal, Write};

use etcd_client::proto::{PbAuthRoleGetResponse, PbResponseHeader};
use etcd_client::{Permission, PermissionType, RoleRevokePermissionOptions, UserAddOptions};

use crate::cli::{
    AuthCommand, Format, NamesArgs, PermissionArgs, RoleCommand, UserAddArgs, UserCommand,
    UserGetArgs, UserPasswdArgs,
};
use crate::client::{CtlError, Result};
use crate::json::{self, Obj};

use super::Ctx;

/// authpb's permission types, by etcdctl's names.
const PERM_TYPES: [(&str, PermissionType); 3] = [
    ("READ", PermissionType::Read),
    ("WRITE", PermissionType::Write),
    ("READWRITE", PermissionType::Readwrite),
];

pub async fn auth(ctx: &Ctx, cmd: AuthCommand) -> Result<()> {
    let mut c = ctx.client().await?;
    match cmd {
        AuthCommand::Enable => {
            // As etcdctl: a root user without the root role is given it, then enabling is
            // tried again.
            loop {
                match ctx.timed(c.auth_enable()).await {
                    Ok(_) => break,
                    Err(e) if e.message == "etcdserver: root user does not have root role" => {
                        ctx.timed(c.role_add("root")).await?;
                        ctx.timed(c.user_grant_role("root", "root")).await?;
                    }
                    Err(e) => return Err(e),
                }
            }
            println!("Authentication Enabled");
        }
        AuthCommand::Disable => {
            ctx.timed(c.auth_disable()).await?;
            println!("Authentication Disabled");
        }
    }
    Ok(())
}

/// Prints `simple` in the simple format, or the response header in json.
fn done(ctx: &Ctx, header: &Option<PbResponseHeader>, simple: String) -> Result<()> {
    match ctx.printer.format {
        Format::Simple => println!("{simple}"),
        Format::Json => println!(
            "{}",
            Obj::new().obj("header", json::header(header)).finish()
        ),
        _ => return Err(ctx.printer.unsupported()),
    }
    Ok(())
}

/// A list of users or roles: a name a line, or the response as json with the list as `field`.
fn print_names(
    ctx: &Ctx,
    header: &Option<PbResponseHeader>,
    field: &str,
    names: &[String],
) -> Result<()> {
    match ctx.printer.format {
        Format::Simple => names.iter().for_each(|n| println!("{n}")),
        Format::Json => println!(
            "{}",
            Obj::new()
                .obj("header", json::header(header))
                .list(field, names.iter().map(|n| json::string(n)).collect())
                .finish()
        ),
        _ => return Err(ctx.printer.unsupported()),
    }
    Ok(())
}

/// Exactly `n` positional names, or etcdctl's usage error `usage`.
fn exactly<'a>(args: &'a NamesArgs, n: usize, usage: &str) -> Result<&'a [String]> {
    if args.names.len() == n {
        Ok(&args.names)
    } else {
        Err(CtlError::bad_args(usage))
    }
}

/// The one positional name, or etcdctl's usage error `usage`.
fn one<'a>(args: &'a NamesArgs, usage: &str) -> Result<&'a String> {
    Ok(&exactly(args, 1, usage)?[0])
}

/// A password typed twice at the terminal, or one word read from standard input.
fn read_password(name: &str, interactive: bool) -> Result<String> {
    let stdin = std::io::stdin();
    let mut line = String::new();
    if !interactive || !stdin.is_terminal() {
        stdin.lock().read_line(&mut line)?;
        return Ok(line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string());
    }
    let mut ask = |prompt: String| -> Result<String> {
        print!("{prompt}");
        std::io::stdout().flush()?;
        line.clear();
        stdin.lock().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    };
    let first = ask(format!("Password of {name}: "))?;
    if first.is_empty() {
        return Err(CtlError::bad_args("empty password"));
    }
    let again = ask(format!("Type password of {name} again for confirmation: "))?;
    if first != again {
        return Err(CtlError::bad_args("given passwords are different"));
    }
    Ok(first)
}

pub async fn user(ctx: &Ctx, cmd: UserCommand) -> Result<()> {
    match cmd {
        UserCommand::Add(args) => user_add(ctx, args).await,
        UserCommand::Delete(args) => {
            let name = one(
                &args,
                "user delete command requires user name as its argument",
            )?;
            let mut c = ctx.client().await?;
            let r = ctx.timed(c.user_delete(name.as_str())).await?.0;
            done(ctx, &r.header, format!("User {name} deleted"))
        }
        UserCommand::Get(args) => user_get(ctx, args).await,
        UserCommand::List(args) => {
            exactly(&args, 0, "user list command requires no arguments")?;
            let mut c = ctx.client().await?;
            let r = ctx.timed(c.user_list()).await?.0;
            print_names(ctx, &r.header, "users", &r.users)
        }
        UserCommand::Passwd(args) => user_passwd(ctx, args).await,
        UserCommand::GrantRole(args) => {
            let [user, role] = exactly(
                &args,
                2,
                "user grant command requires user name and role name as its argument",
            )?
            else {
                unreachable!("two names")
            };
            let mut c = ctx.client().await?;
            let r = ctx
                .timed(c.user_grant_role(user.as_str(), role.as_str()))
                .await?
                .0;
            done(
                ctx,
                &r.header,
                format!("Role {role} is granted to user {user}"),
            )
        }
        UserCommand::RevokeRole(args) => {
            let [user, role] = exactly(
                &args,
                2,
                "user revoke-role requires user name and role name as its argument",
            )?
            else {
                unreachable!("two names")
            };
            let mut c = ctx.client().await?;
            let r = ctx
                .timed(c.user_revoke_role(user.as_str(), role.as_str()))
                .await?
                .0;
            done(
                ctx,
                &r.header,
                format!("Role {role} is revoked from user {user}"),
            )
        }
    }
}

async fn user_add(ctx: &Ctx, args: UserAddArgs) -> Result<()> {
    let [arg] = args.names.as_slice() else {
        return Err(CtlError::bad_args(
            "user add command requires user name as its argument",
        ));
    };
    let (name, password) = if args.no_password {
        (arg.clone(), String::new())
    } else if let Some((name, password)) = arg.split_once(':') {
        if name.is_empty() {
            return Err(CtlError::bad_args("empty user name is not allowed"));
        }
        (name.to_string(), password.to_string())
    } else if let Some(password) = args.new_user_password {
        (arg.clone(), password)
    } else {
        (arg.clone(), read_password(arg, args.interactive)?)
    };
    let options = args
        .no_password
        .then(|| UserAddOptions::new().with_no_pwd());
    let mut c = ctx.client().await?;
    let r = ctx
        .timed(c.user_add(name.as_str(), password, options))
        .await?
        .0;
    done(ctx, &r.header, format!("User {name} created"))
}

async fn user_get(ctx: &Ctx, args: UserGetArgs) -> Result<()> {
    let [name] = args.names.as_slice() else {
        return Err(CtlError::bad_args(
            "user get command requires user name as its argument",
        ));
    };
    let mut c = ctx.client().await?;
    let r = ctx.timed(c.user_get(name.as_str())).await?.0;
    if args.detail {
        println!("User: {name}");
        for role in &r.roles {
            let perms = ctx.timed(c.role_get(role.as_str())).await?.0;
            match ctx.printer.format {
                Format::Simple => {
                    println!();
                    print_role(role, &perms);
                }
                Format::Json => println!("{}", role_json(&perms)),
                _ => return Err(ctx.printer.unsupported()),
            }
        }
        return Ok(());
    }
    match ctx.printer.format {
        Format::Simple => {
            println!("User: {name}");
            println!(
                "Roles:{}",
                r.roles.iter().map(|r| format!(" {r}")).collect::<String>()
            );
        }
        Format::Json => println!(
            "{}",
            Obj::new()
                .obj("header", json::header(&r.header))
                .list("roles", r.roles.iter().map(|r| json::string(r)).collect())
                .finish()
        ),
        _ => return Err(ctx.printer.unsupported()),
    }
    Ok(())
}

async fn user_passwd(ctx: &Ctx, args: UserPasswdArgs) -> Result<()> {
    let [name] = args.names.as_slice() else {
        return Err(CtlError::bad_args(
            "user passwd command requires user name as its argument",
        ));
    };
    let password = read_password(name, args.interactive)?;
    let mut c = ctx.client().await?;
    let r = ctx
        .timed(c.user_change_password(name.as_str(), password))
        .await?
        .0;
    done(ctx, &r.header, "Password updated".to_string())
}

pub async fn role(ctx: &Ctx, cmd: RoleCommand) -> Result<()> {
    match cmd {
        RoleCommand::Add(args) => {
            let name = one(&args, "role add command requires role name as its argument")?;
            let mut c = ctx.client().await?;
            let r = ctx.timed(c.role_add(name.as_str())).await?.0;
            done(ctx, &r.header, format!("Role {name} created"))
        }
        RoleCommand::Delete(args) => {
            let name = one(
                &args,
                "role delete command requires role name as its argument",
            )?;
            let mut c = ctx.client().await?;
            let r = ctx.timed(c.role_delete(name.as_str())).await?.0;
            done(ctx, &r.header, format!("Role {name} deleted"))
        }
        RoleCommand::Get(args) => {
            let name = one(&args, "role get command requires role name as its argument")?;
            let mut c = ctx.client().await?;
            let r = ctx.timed(c.role_get(name.as_str())).await?.0;
            match ctx.printer.format {
                Format::Simple => print_role(name, &r),
                Format::Json => println!("{}", role_json(&r)),
                _ => return Err(ctx.printer.unsupported()),
            }
            Ok(())
        }
        RoleCommand::List(args) => {
            exactly(&args, 0, "role list command requires no arguments")?;
            let mut c = ctx.client().await?;
            let r = ctx.timed(c.role_list()).await?.0;
            print_names(ctx, &r.header, "roles", &r.roles)
        }
        RoleCommand::GrantPermission(args) => grant(ctx, args).await,
        RoleCommand::RevokePermission(args) => revoke(ctx, args).await,
    }
}

/// The range end of `key [end]` with `--prefix` or `--from-key`, as etcdctl reads it.
fn range_end(key: &str, end: Option<&String>, prefix: bool, from_key: bool) -> Result<Vec<u8>> {
    if prefix && from_key {
        return Err(CtlError::bad_args(
            "--from-key and --prefix flags are mutually exclusive",
        ));
    }
    match end {
        Some(_) if prefix => Err(CtlError::bad_args(
            "unexpected endkey argument with --prefix flag",
        )),
        Some(_) if from_key => Err(CtlError::bad_args(
            "unexpected endkey argument with --from-key flag",
        )),
        Some(end) => Ok(end.as_bytes().to_vec()),
        None if from_key => Ok(vec![0]),
        None if prefix => Ok(prefix_end(key.as_bytes())),
        None => Ok(Vec::new()),
    }
}

/// clientv3's `GetPrefixRangeEnd`.
fn prefix_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

async fn grant(ctx: &Ctx, args: PermissionArgs) -> Result<()> {
    let (role, perm_type, key, end) = match args.args.as_slice() {
        [role, perm_type, key] => (role, perm_type, key, None),
        [role, perm_type, key, end] => (role, perm_type, key, Some(end)),
        _ => {
            return Err(CtlError::bad_args(
                "role grant command requires role name, permission type, and key [endkey] as its argument",
            ));
        }
    };
    let Some((_, kind)) = PERM_TYPES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(perm_type))
    else {
        return Err(CtlError::bad_args(format!(
            "invalid permission type: {perm_type}"
        )));
    };
    let end = range_end(key, end, args.prefix, args.from_key)?;
    let perm = Permission::new(*kind, key.as_str()).with_range_end(end);
    let mut c = ctx.client().await?;
    let r = ctx
        .timed(c.role_grant_permission(role.as_str(), perm))
        .await?
        .0;
    done(ctx, &r.header, format!("Role {role} updated"))
}

async fn revoke(ctx: &Ctx, args: PermissionArgs) -> Result<()> {
    let (role, key, end) = match args.args.as_slice() {
        [role, key] => (role, key, None),
        [role, key, end] => (role, key, Some(end)),
        _ => {
            return Err(CtlError::bad_args(
                "role revoke-permission command requires role name and key [endkey] as its argument",
            ));
        }
    };
    let end = range_end(key, end, args.prefix, args.from_key)?;
    let what = if end.is_empty() {
        format!("key {key}")
    } else {
        format!("range [{key}, {})", String::from_utf8_lossy(&end))
    };
    let options = RoleRevokePermissionOptions::new().with_range_end(end);
    let mut c = ctx.client().await?;
    let r = ctx
        .timed(c.role_revoke_permission(role.as_str(), key.as_str(), Some(options)))
        .await?
        .0;
    done(
        ctx,
        &r.header,
        format!("Permission of {what} is revoked from role {role}"),
    )
}

/// etcdctl's simple printing of a role's permissions.
fn print_role(name: &str, r: &PbAuthRoleGetResponse) {
    println!("Role {name}");
    for (title, kind) in [
        ("KV Read:", PermissionType::Read),
        ("KV Write:", PermissionType::Write),
    ] {
        println!("{title}");
        let granted = r.perm.iter().filter(|p| {
            p.perm_type == kind as i32 || p.perm_type == PermissionType::Readwrite as i32
        });
        for p in granted {
            let key = String::from_utf8_lossy(&p.key);
            if p.range_end.is_empty() {
                println!("\t{key}");
                continue;
            }
            let mut line = if p.range_end == [0] {
                format!("\t[{key}, <open ended>")
            } else {
                format!("\t[{key}, {})", String::from_utf8_lossy(&p.range_end))
            };
            if prefix_end(&p.key) == p.range_end {
                line.push_str(&format!(" (prefix {key})"));
            }
            println!("{line}");
        }
    }
}

fn role_json(r: &PbAuthRoleGetResponse) -> String {
    let perms = r
        .perm
        .iter()
        .map(|p| {
            Obj::new()
                .int("permType", p.perm_type)
                .bytes("key", &p.key)
                .bytes("range_end", &p.range_end)
                .finish()
        })
        .collect();
    Obj::new()
        .obj("header", json::header(&r.header))
        .list("perm", perms)
        .finish()
}
