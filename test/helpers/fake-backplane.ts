import type {
  Backplane, BackplaneStatus, ClientHandle, JoinResult, LoginResult, Member, PartResult, RoomListing,
  RoomMembersResult, RoomMessageResult, UserMessageResult,
} from '../../src/backplane/types.js';

// A backplane whose every answer the test gives: each call is recorded in order (method, args)
// and returns a promise that stays pending until the test resolves or rejects it, unless the
// test told that method to answer at once. With it a test decides in which order, and in which
// event-loop turn, the session's commands finish.

/** The methods a session awaits (status() is synchronous and answered at once). */
export interface Answers {
  login: LoginResult;
  logout: void;
  join: JoinResult;
  part: PartResult;
  sendToRoom: RoomMessageResult;
  sendToUser: UserMessageResult;
  confirm: void;
  roomMembers: RoomMembersResult;
  listRooms: RoomListing[];
  close: void;
}

export type Method = keyof Answers;

type ArgsOf<M extends Method> = Parameters<Backplane[M]>;

export interface Call<M extends Method = Method> {
  readonly method: M;
  readonly args: ArgsOf<M>;
  /** Settled by the test (or at once): later calls to resolve or reject are refused. */
  readonly settled: boolean;
  resolve(value: Answers[M]): void;
  reject(error: unknown): void;
}

type Answerer<M extends Method> = (...args: ArgsOf<M>) => Answers[M] | Error;

export class FakeBackplane implements Backplane {
  readonly calls: Call[] = [];
  private readonly atOnce = new Map<Method, Answerer<Method>>();
  private readonly waiters = new Set<() => void>();

  /** What a working backplane would answer, for tests that do not care about a method. */
  static readonly usualAnswers: { [M in Method]: Answerer<M> } = {
    login: (user) => ({ member: { loginId: `login-${user}`, user } }),
    logout: () => undefined,
    join: () => 'ok',
    part: () => 'ok',
    sendToRoom: (_sender, room) => ({ roomName: room }),
    sendToUser: () => 'ok',
    confirm: () => undefined,
    roomMembers: (member, room) => ({ roomName: room, members: [member.user] }),
    listRooms: () => [],
    close: () => undefined,
  };

  /** From now on, `method` answers as soon as it is called (the usual answer unless given one; an Error rejects). */
  answerAtOnce<M extends Method>(method: M, answer?: Answerer<M>): this {
    this.atOnce.set(method, (answer ?? FakeBackplane.usualAnswers[method]) as Answerer<Method>);
    return this;
  }

  answerEverythingAtOnce(): this {
    for (const method of Object.keys(FakeBackplane.usualAnswers) as Method[]) this.answerAtOnce(method);
    return this;
  }

  /** From now on, `method` waits for the test again. */
  holdAnswers(method: Method): this {
    this.atOnce.delete(method);
    return this;
  }

  callsOf<M extends Method>(method: M): Call<M>[] {
    return this.calls.filter((call): call is Call<M> => call.method === method);
  }

  /** The methods called so far, in order. */
  get methods(): Method[] {
    return this.calls.map((call) => call.method);
  }

  /** Resolves once `method` has been called `count` times in all; fails naming what was called instead. */
  async waitForCalls<M extends Method>(method: M, count: number, timeoutMs = 5000): Promise<Call<M>[]> {
    const done = () => this.callsOf(method).length >= count;
    if (!done()) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.waiters.delete(check);
          reject(new Error(`waited ${timeoutMs} ms for ${count} ${method} calls; calls so far: ${this.methods.join(', ') || 'none'}`));
        }, timeoutMs);
        const check = () => {
          if (!done()) return;
          clearTimeout(timer);
          this.waiters.delete(check);
          resolve();
        };
        this.waiters.add(check);
      });
    }
    return this.callsOf(method);
  }

  /** The one call of `method` so far, or fails. */
  only<M extends Method>(method: M): Call<M> {
    const calls = this.callsOf(method);
    if (calls.length !== 1) throw new Error(`expected one ${method} call, got ${calls.length}: ${this.methods.join(', ')}`);
    return calls[0]!;
  }

  /** The ClientHandle given at the login of `user` (the latest, if several). */
  clientOf(user: string): ClientHandle {
    const login = this.callsOf('login').filter((call) => call.args[0] === user).at(-1);
    if (!login) throw new Error(`${user} never called login`);
    return login.args[1];
  }

  private record<M extends Method>(method: M, args: ArgsOf<M>): Promise<Answers[M]> {
    let settled = false;
    let settle!: { resolve: (value: Answers[M]) => void; reject: (error: unknown) => void };
    const promise = new Promise<Answers[M]>((resolve, reject) => { settle = { resolve, reject }; });
    const once = (what: string) => {
      if (settled) throw new Error(`${method} call #${this.calls.indexOf(call)} ${what} after it was already settled`);
      settled = true;
    };
    const call: Call<M> = {
      method,
      args,
      get settled() { return settled; },
      resolve: (value) => { once('resolved'); settle.resolve(value); },
      reject: (error) => { once('rejected'); settle.reject(error); },
    };
    this.calls.push(call as unknown as Call);
    const answer = this.atOnce.get(method) as Answerer<M> | undefined;
    if (answer) {
      const value = answer(...args);
      if (value instanceof Error) call.reject(value);
      else call.resolve(value);
    }
    for (const wake of [...this.waiters]) wake();
    return promise;
  }

  // Backplane

  login(user: string, client: ClientHandle): Promise<LoginResult> {
    return this.record('login', [user, client]);
  }

  logout(member: Member): Promise<void> {
    return this.record('logout', [member]);
  }

  join(member: Member, room: string): Promise<JoinResult> {
    return this.record('join', [member, room]);
  }

  part(member: Member, room: string): Promise<PartResult> {
    return this.record('part', [member, room]);
  }

  sendToRoom(sender: Member, room: string, text: string): Promise<RoomMessageResult> {
    return this.record('sendToRoom', [sender, room, text]);
  }

  sendToUser(sender: Member, user: string, text: string): Promise<UserMessageResult> {
    return this.record('sendToUser', [sender, user, text]);
  }

  confirm(member: Member): Promise<void> {
    return this.record('confirm', [member]);
  }

  roomMembers(member: Member, room: string): Promise<RoomMembersResult> {
    return this.record('roomMembers', [member, room]);
  }

  listRooms(member: Member): Promise<RoomListing[]> {
    return this.record('listRooms', [member]);
  }

  status(): BackplaneStatus {
    return { up: true, state: 'fake' };
  }

  close(): Promise<void> {
    return this.record('close', []);
  }
}
