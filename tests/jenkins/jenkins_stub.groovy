// Runs a declarative Jenkinsfile without Jenkins: a stub of the pipeline DSL that evaluates the
// directives (parameters, environment, when, post), runs every `sh` step for real in the workspace,
// assumes roles for `withAWS` through a helper command, answers `input` from the configuration and
// records what happened as JSON. Steps that only talk to Jenkins (junit, archiveArtifacts, emailext)
// are recorded, not emulated.
//
// usage: groovy jenkins_stub.groovy CONFIG.json
//   {"jenkinsfile", "workspace", "params": {..}, "env": {..}, "input": "proceed"|"abort",
//    "skip_sh": [regex, ..], "assume_role_command": [argv..], "log": "out.json"}

import groovy.json.JsonOutput
import groovy.json.JsonSlurper

class StepFailed extends RuntimeException {
    StepFailed(String message) { super(message) }
}

class BuildAborted extends RuntimeException {
    BuildAborted(String message) { super(message) }
}

class Recorder {
    List events = []
    String currentStage = null

    void add(Map event) {
        if (currentStage != null && !event.containsKey('stage')) {
            event.stage = currentStage
        }
        events << event
    }
}

// One object answers every DSL call; unknown directives and steps are recorded, never silently dropped.
class Dsl {
    Map config
    Recorder rec
    Map baseEnv = [:]          // process environment plus Jenkins' own variables
    Map pipelineEnv = [:]      // the environment {} directive
    List overlays = []         // withAWS / withEnv blocks, innermost last
    Map params = [:]
    Map paramDefs = [:]
    List stageDefs = []
    Map pipelinePost = [:]
    File workspace
    String result = 'SUCCESS'

    Dsl(Map config, Recorder rec) {
        this.config = config
        this.rec = rec
        this.workspace = new File(config.workspace as String)
        baseEnv.putAll(System.getenv())
        baseEnv.putAll([WORKSPACE: workspace.absolutePath, BUILD_NUMBER: '1', JOB_NAME: 'mlops-promotion',
                        BUILD_TAG: 'jenkins-mlops-promotion-1', BUILD_URL: 'http://jenkins.invalid/job/mlops-promotion/1/'])
        baseEnv.putAll((config.env ?: [:]) as Map)
    }

    Map currentEnv() {
        Map merged = [:]
        merged.putAll(baseEnv)
        params.each { k, v -> merged[k] = String.valueOf(v) }
        merged.putAll(pipelineEnv)
        overlays.each { merged.putAll(it) }
        return merged
    }

    static void run(Closure body, Object delegate) {
        body.resolveStrategy = Closure.DELEGATE_FIRST
        body.delegate = delegate
        body.call()
    }

    // Parameter values as Jenkins would hand them to the build: defaults, overridden by the request.
    void resolveParams() {
        Map requested = (config.params ?: [:]) as Map
        paramDefs.each { String name, Map definition ->
            Object value = requested.containsKey(name) ? requested[name] : definition.default
            if (definition.type == 'boolean') {
                value = value instanceof Boolean ? value : Boolean.parseBoolean(String.valueOf(value))
            } else if (definition.type == 'choice' && !(value in definition.choices)) {
                throw new IllegalArgumentException("parameter ${name}: '${value}' is not one of ${definition.choices}")
            } else if (definition.trim) {
                value = String.valueOf(value).trim()
            }
            params[name] = value
        }
    }

    // -- top level ---------------------------------------------------------------------------------
    def pipeline(Closure body) {
        run(body, new PipelineBlock(this))
        execute()
    }

    void execute() {
        rec.add([event: 'build-start', params: params])
        boolean failed = false
        for (Map stage : stageDefs) {
            if (failed) {
                rec.add([event: 'stage-skipped', stage: stage.name, reason: 'an earlier stage failed'])
                continue
            }
            rec.currentStage = stage.name
            if (stage.when != null && !evaluateWhen(stage.when)) {
                rec.add([event: 'stage-skipped', reason: 'when condition is false'])
                rec.currentStage = null
                continue
            }
            rec.add([event: 'stage-start'])
            println "[stub] ===== stage: ${stage.name}"
            String stageResult = 'SUCCESS'
            try {
                run(stage.steps as Closure, new Steps(this))
            } catch (BuildAborted e) {
                stageResult = 'ABORTED'
                result = 'ABORTED'
                failed = true
                rec.add([event: 'stage-aborted', message: e.message])
            } catch (StepFailed e) {
                stageResult = 'FAILURE'
                result = 'FAILURE'
                failed = true
                rec.add([event: 'stage-failed', message: e.message])
            }
            runPost(stage.post as Map, stageResult)
            if (stageResult == 'SUCCESS') {
                rec.add([event: 'stage-passed'])
            }
            rec.currentStage = null
        }
        runPost(pipelinePost, result)
        rec.add([event: 'build-end', result: result])
    }

    boolean evaluateWhen(Closure when) {
        WhenBlock block = new WhenBlock(this)
        run(when, block)
        return block.conditions.every { it }
    }

    void runPost(Map post, String outcome) {
        if (post == null) {
            return
        }
        List order = ['always', outcome == 'SUCCESS' ? 'success' : null, outcome == 'FAILURE' ? 'failure' : null,
                      outcome == 'ABORTED' ? 'aborted' : null, 'cleanup'].findAll { it != null }
        for (String condition : order) {
            if (post[condition] != null) {
                rec.add([event: 'post', condition: condition])
                try {
                    run(post[condition] as Closure, new Steps(this))
                } catch (StepFailed e) {
                    rec.add([event: 'post-failed', condition: condition, message: e.message])
                    if (result == 'SUCCESS') {
                        result = 'FAILURE'
                    }
                }
            }
        }
    }

    // -- steps -------------------------------------------------------------------------------------
    Object sh(Object arg) {
        Map options = arg instanceof Map ? (arg as Map) : [script: arg.toString()]
        String script = options.script.toString()
        for (Object pattern : (config.skip_sh ?: [])) {
            if (script =~ pattern.toString()) {
                rec.add([event: 'sh-skipped', script: script, reason: "skipped by the stub (matches ${pattern})".toString()])
                println "[stub] SKIPPED by the stub (would recurse into the test suite): ${script}"
                return options.returnStatus ? 0 : ''
            }
        }
        println "[stub] + ${script}"
        Map env = currentEnv()
        List envList = env.collect { k, v -> "${k}=${v}".toString() }
        long started = System.currentTimeMillis()
        Process process = ['sh', '-e', '-c', script].execute(envList, workspace)
        StringBuffer out = new StringBuffer()
        StringBuffer err = new StringBuffer()
        Thread outThread = Thread.start { process.inputStream.eachLine { line -> out.append(line).append('\n'); if (!options.returnStdout) { println line } } }
        Thread errThread = Thread.start { process.errorStream.eachLine { line -> err.append(line).append('\n'); System.err.println(line) } }
        int code = process.waitFor()
        outThread.join()
        errThread.join()
        List tail = err.toString().readLines().findAll { it.trim() }
        rec.add([event: 'sh', script: script, exit: code, aws_role: env.MLOPS_STUB_ROLE ?: null,
                 seconds: (System.currentTimeMillis() - started) / 1000.0,
                 stderr_tail: tail.size() > 5 ? tail[-5..-1] : tail])
        if (options.returnStatus) {
            return code
        }
        if (code != 0) {
            throw new StepFailed("script returned exit code ${code}: ${script}".toString())
        }
        return options.returnStdout ? out.toString() : null
    }

    Object withAWS(Map args, Closure body) {
        String account = String.valueOf(args.roleAccount)
        String roleArn = "arn:aws:iam::${account}:role/${args.role}".toString()
        List command = (config.assume_role_command as List).collect { it.toString() }
        command += ['--role-arn', roleArn, '--session-name', String.valueOf(args.roleSessionName ?: 'jenkins')]
        if (args.externalId) {
            command += ['--external-id', String.valueOf(args.externalId)]
        }
        if (args.region) {
            command += ['--region', String.valueOf(args.region)]
        }
        Process process = command.execute(currentEnv().collect { k, v -> "${k}=${v}".toString() }, workspace)
        StringBuffer out = new StringBuffer()
        StringBuffer err = new StringBuffer()
        process.waitForProcessOutput(out, err)
        if (process.exitValue() != 0) {
            rec.add([event: 'withAWS-failed', role_arn: roleArn, message: err.toString().trim()])
            throw new StepFailed("withAWS could not assume ${roleArn}: ${err.toString().trim()}".toString())
        }
        Map credentials = new JsonSlurper().parseText(out.toString()) as Map
        rec.add([event: 'withAWS', role_arn: roleArn, external_id: args.externalId, region: args.region])
        Map overlay = [AWS_ACCESS_KEY_ID: credentials.AccessKeyId, AWS_SECRET_ACCESS_KEY: credentials.SecretAccessKey,
                       AWS_SESSION_TOKEN: credentials.SessionToken, MLOPS_SANDBOX_CREDENTIALS: 'env',
                       MLOPS_STUB_ROLE: roleArn]
        if (args.region) {
            overlay.AWS_REGION = args.region
            overlay.AWS_DEFAULT_REGION = args.region
        }
        overlays << overlay
        try {
            run(body, new Steps(this))
        } finally {
            overlays.remove(overlays.size() - 1)
        }
        return null
    }

    Object withEnv(List pairs, Closure body) {
        Map overlay = [:]
        pairs.each { String pair -> List kv = pair.tokenize('='); overlay[kv[0]] = pair.substring(kv[0].length() + 1) }
        overlays << overlay
        try {
            run(body, new Steps(this))
        } finally {
            overlays.remove(overlays.size() - 1)
        }
        return null
    }

    Object input(Map args) {
        String answer = String.valueOf(config.input ?: 'abort')
        rec.add([event: 'input', message: args.message, submitter: args.submitter, answer: answer])
        println "[stub] input '${args.message}' answered: ${answer}"
        if (answer != 'proceed') {
            throw new BuildAborted("input '${args.message}' was not approved".toString())
        }
        return args.submitterParameter ? 'stub-approver' : null
    }

    Object readJSON(Map args) {
        String text = args.text != null ? args.text.toString() : new File(workspace, args.file.toString()).text
        return new JsonSlurper().parseText(text)
    }

    Object error(String message) {
        rec.add([event: 'error', message: message])
        throw new StepFailed(message)
    }

    Object echo(Object message) {
        println "[stub] echo: ${message}"
        rec.add([event: 'echo', message: message.toString()])
        return null
    }

    Object script(Closure body) {
        run(body, new Steps(this))
        return null
    }

    // Steps that only talk to Jenkins itself: recorded with their arguments.
    Object recordStep(String name, Object args) {
        rec.add([event: 'step', step: name, args: args])
        println "[stub] ${name} (recorded, not emulated): ${args}"
        return null
    }
}

class PipelineBlock {
    Dsl dsl

    PipelineBlock(Dsl dsl) { this.dsl = dsl }

    def agent(Object any) { dsl.rec.add([event: 'directive', name: 'agent', value: String.valueOf(any)]) }
    def options(Closure body) { Dsl.run(body, new Recording(dsl, 'option')) }
    def triggers(Closure body) { Dsl.run(body, new Recording(dsl, 'trigger')) }
    def tools(Closure body) { Dsl.run(body, new Recording(dsl, 'tool')) }
    def parameters(Closure body) { Dsl.run(body, new ParametersBlock(dsl)); dsl.resolveParams() }
    def environment(Closure body) { Dsl.run(body, new EnvironmentBlock(dsl)) }
    def stages(Closure body) { Dsl.run(body, new StagesBlock(dsl)) }
    def post(Closure body) { PostBlock block = new PostBlock(); Dsl.run(body, block); dsl.pipelinePost = block.conditions }
    def propertyMissing(String name) { name }
    def methodMissing(String name, Object args) { throw new MissingMethodException(name, PipelineBlock, args as Object[]) }
}

class Recording {
    Dsl dsl
    String kind

    Recording(Dsl dsl, String kind) { this.dsl = dsl; this.kind = kind }

    def methodMissing(String name, Object args) {
        dsl.rec.add([event: 'directive', name: kind, value: name])
        return name
    }

    def propertyMissing(String name) { name }
}

class ParametersBlock {
    Dsl dsl

    ParametersBlock(Dsl dsl) { this.dsl = dsl }

    def choice(Map args) { dsl.paramDefs[args.name] = [type: 'choice', choices: args.choices, default: (args.choices as List)[0]] }
    def string(Map args) { dsl.paramDefs[args.name] = [type: 'string', default: args.defaultValue ?: '', trim: args.trim] }
    def booleanParam(Map args) { dsl.paramDefs[args.name] = [type: 'boolean', default: args.defaultValue ?: false] }
    def methodMissing(String name, Object args) { throw new MissingMethodException(name, ParametersBlock, args as Object[]) }
}

class EnvironmentBlock {
    Dsl dsl

    EnvironmentBlock(Dsl dsl) { this.dsl = dsl }

    void propertyMissing(String name, Object value) { dsl.pipelineEnv[name] = value.toString() }
    def propertyMissing(String name) { dsl.currentEnv()[name] }
}

class StagesBlock {
    Dsl dsl

    StagesBlock(Dsl dsl) { this.dsl = dsl }

    def stage(String name, Closure body) {
        StageBlock block = new StageBlock()
        Dsl.run(body, block)
        dsl.stageDefs << [name: name, when: block.when, steps: block.steps, post: block.post]
    }
}

class StageBlock {
    Closure when
    Closure steps
    Map post

    def when(Closure body) { when = body }
    def steps(Closure body) { steps = body }
    def post(Closure body) { PostBlock block = new PostBlock(); Dsl.run(body, block); post = block.conditions }
    def methodMissing(String name, Object args) { throw new MissingMethodException(name, StageBlock, args as Object[]) }
}

class PostBlock {
    Map conditions = [:]

    def methodMissing(String name, Object args) {
        Object[] list = args as Object[]
        conditions[name] = list[0]
        return null
    }
}

class WhenBlock {
    Dsl dsl
    List conditions = []

    WhenBlock(Dsl dsl) { this.dsl = dsl }

    def environment(Map args) { conditions << (dsl.currentEnv()[args.name] == args.value) }
    def expression(Closure body) {
        body.resolveStrategy = Closure.DELEGATE_FIRST
        body.delegate = new Steps(dsl)
        conditions << (body.call() as boolean)  // Groovy truth, as Jenkins evaluates it
    }
    // Jenkins matches BRANCH_NAME (set by multibranch jobs) against an Ant-style glob; no BRANCH_NAME, no match
    def branch(String pattern) {
        String name = dsl.currentEnv()['BRANCH_NAME']
        String regex = pattern.replace('.', '\\.').replace('**', '\u0000').replace('*', '[^/]*')
                .replace('?', '.').replace('\u0000', '.*')
        conditions << (name != null && name ==~ regex)
    }
    def not(Closure body) { WhenBlock inner = new WhenBlock(dsl); Dsl.run(body, inner); conditions << !inner.conditions.every { it } }
    def allOf(Closure body) { WhenBlock inner = new WhenBlock(dsl); Dsl.run(body, inner); conditions << inner.conditions.every { it } }
    def anyOf(Closure body) { WhenBlock inner = new WhenBlock(dsl); Dsl.run(body, inner); conditions << inner.conditions.any { it } }
    def getParams() { dsl.params }
    def getEnv() { dsl.currentEnv() }
}

// The delegate of steps {}, script {}, post conditions and withAWS bodies.
class Steps {
    Dsl dsl

    Steps(Dsl dsl) { this.dsl = dsl }

    def getParams() { dsl.params }
    def getEnv() { dsl.currentEnv() }
    def sh(Object arg) { dsl.sh(arg) }
    def withAWS(Map args, Closure body) { dsl.withAWS(args, body) }
    def withEnv(List pairs, Closure body) { dsl.withEnv(pairs, body) }
    def input(Map args) { dsl.input(args) }
    def readJSON(Map args) { dsl.readJSON(args) }
    def error(String message) { dsl.error(message) }
    def echo(Object message) { dsl.echo(message) }
    def script(Closure body) { dsl.script(body) }
    def culprits() { 'culprits' }
    def requestor() { 'requestor' }
    def developers() { 'developers' }

    def methodMissing(String name, Object args) {
        Object[] list = args as Object[]
        if (name in ['junit', 'archiveArtifacts', 'emailext', 'mail', 'stash', 'unstash', 'cleanWs', 'publishHTML']) {
            return dsl.recordStep(name, list.length == 1 ? list[0] : list.toList())
        }
        throw new MissingMethodException(name, Steps, list)
    }
}

Map config = new JsonSlurper().parse(new File(args[0])) as Map
Recorder recorder = new Recorder()
Dsl dsl = new Dsl(config, recorder)
Binding binding = new Binding()
binding.setVariable('pipeline', { Closure body -> dsl.pipeline(body) })
binding.setVariable('params', dsl.params)
String exitResult = 'FAILURE'
try {
    new GroovyShell(binding).evaluate(new File(config.jenkinsfile as String))
    exitResult = dsl.result
} finally {
    new File(config.log as String).text = JsonOutput.prettyPrint(JsonOutput.toJson(
            [result: exitResult, params: dsl.params, parameters: dsl.paramDefs, events: recorder.events]))
}
println "[stub] build result: ${exitResult}"
System.exit(exitResult == 'SUCCESS' ? 0 : 1)
